//! The storage conformance suite: the same checks against SQLite and
//! PostgreSQL. Each test makes its own database and drops it.

mod support;

use murmur::storage::{
    audience::{SortKey, UserListQuery},
    ApiKeyRow, AppRow, AppUserChanges, NewAppUser, PendingEvent, PendingUpdate, Store, StoreError, TeammateRow,
    ThrottleAllowance, UserWriteError,
};
use serde_json::json;

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
    let rule = ThrottleAllowance { free: 2, cap_secs: 5 };
    let keys = vec!["account:a@x.io".to_string(), "address:1.2.3.4".to_string()];
    assert!(s.throttle_rows(&keys).await.unwrap().is_empty());
    assert!(s.throttle_attempt("account:a@x.io", 1_000, 0, rule).await.unwrap());
    assert!(s.throttle_attempt("account:a@x.io", 2_000, 0, rule).await.unwrap());
    assert!(s.throttle_attempt("address:1.2.3.4", 2_000, 0, rule).await.unwrap());
    let rows = s.throttle_rows(&keys).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].failures, rows[0].last_failure_at), (2, 2_000));
    assert_eq!(rows[1].failures, 1);
    // Past the free attempts, each waits its delay (1 s, 2 s, 4 s, then the
    // 5 s cap), and a refused attempt changes nothing.
    let mut at = 2_000;
    for (failures, delay_ms) in [(2, 1_000), (3, 2_000), (4, 4_000), (5, 5_000), (6, 5_000)] {
        assert_eq!(rule.delay_secs(failures) * 1000, delay_ms);
        assert!(!s.throttle_attempt("account:a@x.io", at + delay_ms - 1, 0, rule).await.unwrap(), "{failures}");
        let row = &s.throttle_rows(&keys[..1]).await.unwrap()[0];
        assert_eq!((row.failures, row.last_failure_at), (failures, at));
        at += delay_ms;
        assert!(s.throttle_attempt("account:a@x.io", at, 0, rule).await.unwrap(), "{failures}");
    }
    // A taken-back attempt leaves one fewer failure.
    s.throttle_take_back("account:a@x.io").await.unwrap();
    assert_eq!(s.throttle_rows(&keys[..1]).await.unwrap()[0].failures, 6);
    // A count older than the forget horizon starts again.
    assert!(s.throttle_attempt("account:a@x.io", at + 1, at + 1, rule).await.unwrap());
    assert_eq!(s.throttle_rows(&keys[..1]).await.unwrap()[0].failures, 1);
    s.throttle_clear("account:a@x.io").await.unwrap();
    assert_eq!(s.throttle_rows(&keys).await.unwrap().len(), 1);
    // The real rules: free attempts, then the account's 60 s cap and the
    // address's 15 min cap, as the sign-in code computes them.
    use murmur::server::auth::throttle::{ACCOUNT, ADDRESS};
    for (key, allowance) in [("account:b@x.io", ACCOUNT), ("address:5.6.7.8", ADDRESS)] {
        let mut at = 10_000;
        for failures in 0..allowance.free + 14 {
            let wait = allowance.delay_secs(failures) * 1000;
            if wait > 0 {
                assert!(!s.throttle_attempt(key, at + wait - 1, 0, allowance).await.unwrap(), "{key} {failures}");
            }
            at += wait;
            assert!(s.throttle_attempt(key, at, 0, allowance).await.unwrap(), "{key} {failures}");
        }
    }
}

/// Many attempts at once on one key: exactly the free ones get through.
async fn throttle_attempts_at_once_pass_only_the_allowance(s: &Store) {
    let rule = ThrottleAllowance { free: 5, cap_secs: 60 };
    let attempts = (0..40).map(|_| {
        let s = s.clone();
        tokio::spawn(async move { s.throttle_attempt("account:busy@x.io", 5_000, 0, rule).await.unwrap() })
    });
    let mut passed = 0;
    for a in attempts.collect::<Vec<_>>() {
        passed += a.await.unwrap() as usize;
    }
    assert_eq!(passed, 5);
    assert_eq!(s.throttle_rows(&["account:busy@x.io".to_string()]).await.unwrap()[0].failures, 5);
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

/// An "item-in-cart" event of app1's `user`.
fn cart(user: &str, at: i64) -> PendingEvent {
    PendingEvent {
        app_id: "app1".into(),
        user_ref: user.into(),
        name: "item-in-cart".into(),
        at,
        properties: None,
        max_catalog: i64::MAX,
    }
}

fn user(i: usize, name: Option<&str>, signed_up_at: i64, props: serde_json::Value) -> NewAppUser {
    NewAppUser {
        id: format!("id{i:03}"),
        app_id: "app1".into(),
        user_id: Some(format!("user{i}")),
        given_name: name.map(String::from),
        surname: None,
        email: Some(format!("u{i}@x.io")),
        signed_up_at,
        app_version: None,
        app_version_key: None,
        platform: None,
        properties: props.as_object().unwrap().clone(),
        now: 1_000,
    }
}

async fn users_properties_and_events(s: &Store) {
    s.insert_app(&app("app1", 10), &[]).await.unwrap();
    s.insert_app(&app("app2", 10), &[]).await.unwrap();
    let t = |n: &str, ty: &'static str| (n.to_string(), ty);
    s.create_app_user(&user(1, Some("Ada"), 100, json!({"plan": "gold"})), &[t("plan", "text")]).await.unwrap();
    // The same userId in one app is a duplicate; in another app it is not.
    assert!(matches!(
        s.create_app_user(&user(1, None, 100, json!({})), &[]).await,
        Err(UserWriteError::Duplicate) | Err(UserWriteError::Store(_))
    ));
    let mut other = user(2, None, 100, json!({}));
    other.app_id = "app2".into();
    other.user_id = Some("user1".into());
    s.create_app_user(&other, &[]).await.unwrap();
    // A type conflict writes nothing, not even the user.
    let r = s.create_app_user(&user(3, None, 100, json!({"plan": 3})), &[t("plan", "number")]).await;
    assert!(matches!(r, Err(UserWriteError::TypeConflict { ref existing, .. }) if existing == "text"));
    assert!(s.app_user("app1", "user3").await.unwrap().is_none());

    // Updates merge properties; null removes; the limit is checked after the merge.
    let changes = AppUserChanges {
        given_name: Some(Some("Ada L.".into())),
        properties: json!({"plan": null, "seats": 4}).as_object().unwrap().clone(),
        ..Default::default()
    };
    let u = s.update_app_user("app1", "user1", &changes, &[t("seats", "number")], 100, 2_000).await.unwrap();
    assert_eq!(u.given_name.as_deref(), Some("Ada L."));
    assert_eq!(serde_json::Value::Object(u.properties.0.clone()), json!({"seats": 4}));
    let too_many =
        AppUserChanges { properties: json!({"a": 1, "b": 2}).as_object().unwrap().clone(), ..Default::default() };
    let r = s.update_app_user("app1", "user1", &too_many, &[t("a", "number"), t("b", "number")], 2, 3_000).await;
    assert!(matches!(r, Err(UserWriteError::TooManyProperties)));
    let u = s.app_user("app1", "id001").await.unwrap().unwrap();
    assert!(u.properties.0.get("a").is_none(), "rolled back");
    assert!(matches!(
        s.update_app_user("app2", "id001", &AppUserChanges::default(), &[], 100, 1).await,
        Err(UserWriteError::NotFound)
    ));

    // Events: only for users of the app; catalog counts users.
    assert!(s.insert_event("app1", "user1", "item-in-cart", 5_000, None).await.unwrap());
    assert!(s.insert_event("app1", "user1", "item-in-cart", 6_000, Some(r#"{"sku":"A-1"}"#)).await.unwrap());
    assert!(!s.insert_event("app1", "nobody", "item-in-cart", 6_000, None).await.unwrap());
    assert!(!s.insert_event("app2", "id001", "item-in-cart", 6_000, None).await.unwrap(), "another app's user");
    // Counts are made by a recount (the housekeeping's), not on read.
    assert_eq!(s.event_catalog_counts("app1").await.unwrap(), vec![("item-in-cart".to_string(), None)]);
    assert_eq!(s.catalog_counted_at("app1").await.unwrap(), None);
    s.recount_catalog("app1", 7_000).await.unwrap();
    assert_eq!(s.catalog_counted_at("app1").await.unwrap(), Some(7_000));
    assert_eq!(s.event_catalog_counts("app1").await.unwrap(), vec![("item-in-cart".to_string(), Some(1))]);
    let props = s.property_catalog_counts("app1").await.unwrap();
    assert_eq!(props, vec![("plan".into(), "text".into(), Some(0)), ("seats".into(), "number".into(), Some(1))]);
    // Due: never counted, or counted CATALOG_RECOUNT_MS ago; another app's
    // users never count.
    let later = 7_000 + murmur::storage::CATALOG_RECOUNT_MS;
    assert_eq!(s.recount_due_catalogs(later - 1).await.unwrap(), 1, "app2 only");
    assert_eq!(s.property_catalog_counts("app2").await.unwrap().iter().filter(|p| p.2.is_none()).count(), 0);
    assert!(s.insert_event("app1", "user1", "paid \"in full\"", 4_000, None).await.unwrap());
    assert_eq!(s.recount_due_catalogs(later).await.unwrap(), 1, "app1 again");
    assert_eq!(
        s.event_catalog_counts("app1").await.unwrap(),
        vec![("item-in-cart".to_string(), Some(1)), ("paid \"in full\"".to_string(), Some(1))]
    );
    let events = s.user_events("id001", 10).await.unwrap();
    assert_eq!(events.iter().map(|e| e.created_at).collect::<Vec<_>>(), [6_000, 5_000, 4_000]);
    let stored: serde_json::Value = serde_json::from_str(events[0].properties.as_deref().unwrap()).unwrap();
    assert_eq!((stored, events[1].properties.as_deref()), (json!({"sku": "A-1"}), None));
    // Who did each event: a second user, a repeat in one batch, and the
    // deleted user's events no longer counted.
    s.create_app_user(&user(7, None, 1_000, json!({})), &[]).await.unwrap();
    let batch = [cart("user7", 8_000), cart("user7", 8_001), cart("user1", 8_002)];
    assert_eq!(s.insert_events_batch(&batch).await.unwrap(), [true, true, true]);
    s.recount_catalog("app1", 9_000).await.unwrap();
    assert_eq!(
        s.event_catalog_counts("app1").await.unwrap(),
        vec![("item-in-cart".to_string(), Some(2)), ("paid \"in full\"".to_string(), Some(1))]
    );
    assert!(s.delete_app_user("app1", "user1").await.unwrap());
    assert!(s.user_events("id001", 10).await.unwrap().is_empty());
    s.recount_catalog("app1", 10_000).await.unwrap();
    assert_eq!(
        s.event_catalog_counts("app1").await.unwrap(),
        vec![("item-in-cart".to_string(), Some(1)), ("paid \"in full\"".to_string(), Some(0))]
    );
}

async fn events_commit_in_batches(s: &Store) {
    s.insert_app(&app("app1", 10), &[]).await.unwrap();
    s.insert_app(&app("app2", 10), &[]).await.unwrap();
    s.create_app_user(&user(1, None, 1, json!({})), &[]).await.unwrap();
    let ev = |app: &str, user: &str, name: &str, at| PendingEvent {
        app_id: app.into(),
        user_ref: user.into(),
        name: name.into(),
        at,
        properties: (name == "paid").then(|| r#"{"amount":12}"#.to_string()),
        max_catalog: i64::MAX,
    };
    let batch = vec![
        ev("app1", "user1", "opened", 10),
        ev("app1", "nobody", "opened", 11),
        ev("app1", "id001", "paid", 12),
        ev("app2", "user1", "opened", 13),
        ev("app1", "user1", "opened", 14),
    ];
    assert_eq!(s.insert_events_batch(&batch).await.unwrap(), [true, false, true, false, true]);
    let names: Vec<_> = s.user_events("id001", 10).await.unwrap().into_iter().map(|e| (e.name, e.created_at)).collect();
    assert_eq!(names, [("opened".to_string(), 14), ("paid".to_string(), 12), ("opened".to_string(), 10)]);
    let paid = s.user_events("id001", 10).await.unwrap().into_iter().find(|e| e.name == "paid").unwrap();
    let stored: serde_json::Value = serde_json::from_str(paid.properties.as_deref().unwrap()).unwrap();
    assert_eq!(stored, json!({"amount": 12}));
    assert_eq!(s.event_catalog("app1").await.unwrap(), ["opened", "paid"]);
    assert!(s.event_catalog("app2").await.unwrap().is_empty());
    assert_eq!(s.insert_events_batch(&[]).await.unwrap(), Vec::<bool>::new());
}

/// Who did each event (`event_users`), as the catalog's recount reads it.
async fn who_did_what(s: &Store) -> Vec<(String, String)> {
    let sql = "SELECT app_user_id, name FROM event_users ORDER BY app_user_id, name";
    match s {
        Store::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        Store::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(u, n)| (u.to_string(), n.to_string())).collect()
}

/// Events are folded into who did each event later, per app, once each:
/// nothing on write, the new pairs on a fold, nothing twice.
async fn who_did_each_event_is_folded_in_later(s: &Store) {
    s.insert_app(&app("app1", 10), &[]).await.unwrap();
    s.insert_app(&app("app2", 10), &[]).await.unwrap();
    s.create_app_user(&user(1, None, 1, json!({})), &[]).await.unwrap();
    s.create_app_user(&user(2, None, 1, json!({})), &[]).await.unwrap();
    let mut other = user(3, None, 1, json!({}));
    other.app_id = "app2".into();
    s.create_app_user(&other, &[]).await.unwrap();
    let ev = |app: &str, user: &str, name: &str| PendingEvent {
        app_id: app.into(),
        user_ref: user.into(),
        name: name.into(),
        at: 20,
        properties: None,
        max_catalog: i64::MAX,
    };
    let batch = [ev("app1", "user1", "opened"), ev("app1", "user1", "opened"), ev("app1", "user2", "paid")];
    assert_eq!(s.insert_events_batch(&batch).await.unwrap(), [true; 3]);
    assert_eq!(s.insert_events_batch(&[ev("app2", "user3", "opened")]).await.unwrap(), [true]);
    assert!(who_did_what(s).await.is_empty(), "nothing is folded on write");
    assert_eq!(s.fold_event_users("app1").await.unwrap(), 4, "the four event ids so far");
    assert_eq!(who_did_what(s).await, pairs(&[("id001", "opened"), ("id002", "paid")]), "app1's pairs only");
    assert_eq!(s.fold_event_users("app1").await.unwrap(), 0, "nothing new");
    let again = [ev("app1", "user1", "opened"), ev("app1", "user1", "paid"), ev("app1", "user2", "paid")];
    assert_eq!(s.insert_events_batch(&again).await.unwrap(), [true; 3]);
    assert_eq!(s.fold_all_event_users().await.unwrap(), 3 + 7, "app1 from id 4, app2 from the start");
    assert_eq!(
        who_did_what(s).await,
        pairs(&[("id001", "opened"), ("id001", "paid"), ("id002", "paid"), ("id003", "opened")])
    );
    // A deleted user's pairs go with the user; the marks stay.
    assert!(s.delete_app_user("app1", "user2").await.unwrap());
    assert_eq!(s.fold_all_event_users().await.unwrap(), 0);
    assert_eq!(who_did_what(s).await, pairs(&[("id001", "opened"), ("id001", "paid"), ("id003", "opened")]));
}

/// The app_user ids of every event, and of every entry of the per-user
/// index, sorted.
async fn event_owners(s: &Store) -> (Vec<String>, Vec<String>) {
    let (events, index) =
        ("SELECT app_user_id FROM events ORDER BY 1", "SELECT app_user_id FROM events_by_user ORDER BY 1");
    match s {
        Store::Sqlite(p) => (
            sqlx::query_scalar(events).fetch_all(p).await.unwrap(),
            sqlx::query_scalar(index).fetch_all(p).await.unwrap(),
        ),
        Store::Postgres(p) => (
            sqlx::query_scalar(events).fetch_all(p).await.unwrap(),
            sqlx::query_scalar(index).fetch_all(p).await.unwrap(),
        ),
    }
}

/// A user's events are found through the per-user index once folded
/// (migration 0022) and past their app's mark before: every reader sees
/// both, in one order; a deleted user's events go from both.
async fn a_users_events_are_read_before_and_after_their_fold(s: &Store) {
    s.insert_app(&app("app1", 10), &[]).await.unwrap();
    s.insert_app(&app("app2", 10), &[]).await.unwrap();
    for i in [1, 2] {
        s.create_app_user(&user(i, None, 1, json!({})), &[]).await.unwrap();
    }
    let mut other = user(3, None, 1, json!({}));
    other.app_id = "app2".into();
    s.create_app_user(&other, &[]).await.unwrap();
    let ev = |app: &str, user: &str, name: &str, at: i64| PendingEvent {
        app_id: app.into(),
        user_ref: user.into(),
        name: name.into(),
        at,
        properties: None,
        max_catalog: i64::MAX,
    };
    let first = [ev("app1", "user1", "opened", 10), ev("app1", "user1", "paid", 20), ev("app1", "user2", "opened", 10)];
    assert_eq!(s.insert_events_batch(&first).await.unwrap(), [true; 3]);
    let times =
        |events: Vec<murmur::storage::EventRow>| events.into_iter().map(|e| (e.name, e.created_at)).collect::<Vec<_>>();
    let want_first = vec![("paid".to_string(), 20), ("opened".to_string(), 10)];
    assert_eq!(times(s.user_events("id001", 10).await.unwrap()), want_first, "before any fold");
    assert_eq!(event_owners(s).await.1, Vec::<String>::new(), "nothing indexed on write");
    s.fold_all_event_users().await.unwrap();
    assert_eq!(event_owners(s).await.1, ["id001", "id001", "id002"], "the fold indexes each event once");
    assert_eq!(times(s.user_events("id001", 10).await.unwrap()), want_first, "after the fold");
    // Newer and older events past the mark, beside the folded ones.
    let second = [ev("app1", "user1", "opened", 30), ev("app1", "user1", "opened", 15), ev("app2", "user3", "x", 1)];
    assert_eq!(s.insert_events_batch(&second).await.unwrap(), [true; 3]);
    let all = vec![
        ("opened".to_string(), 30),
        ("paid".to_string(), 20),
        ("opened".to_string(), 15),
        ("opened".to_string(), 10),
    ];
    assert_eq!(times(s.user_events("id001", 10).await.unwrap()), all, "folded and not, in one order");
    assert_eq!(times(s.user_events("id001", 2).await.unwrap()), all[..2], "the limit over both");
    assert_eq!(s.last_event("id001", "opened").await.unwrap(), Some((30, 3)));
    assert_eq!(s.last_event("id001", "paid").await.unwrap(), Some((20, 1)));
    assert_eq!(s.last_event("id002", "paid").await.unwrap(), None);
    // A deleted user's events go, folded or not; the others stay.
    assert!(s.delete_app_user("app1", "user1").await.unwrap());
    assert_eq!(event_owners(s).await, (vec!["id002".into(), "id003".into()], vec!["id002".into()]));
    assert!(s.user_events("id001", 10).await.unwrap().is_empty());
    s.fold_all_event_users().await.unwrap();
    assert_eq!(event_owners(s).await.1, ["id002", "id003"]);
    assert_eq!(times(s.user_events("id003", 10).await.unwrap()), [("x".to_string(), 1)]);
}

async fn user_updates_commit_in_batches(s: &Store) {
    s.insert_app(&app("app1", 10), &[]).await.unwrap();
    for i in 1..=2 {
        s.create_app_user(&user(i, None, 1, json!({})), &[("plan".to_string(), "text")]).await.unwrap();
    }
    let job = |user: &str, props: serde_json::Value, ty: &'static str| PendingUpdate {
        app_id: "app1".into(),
        user_ref: user.into(),
        changes: AppUserChanges { properties: props.as_object().unwrap().clone(), ..Default::default() },
        types: props.as_object().unwrap().keys().map(|k| (k.clone(), ty)).collect(),
        max_properties: 100,
        fix_types: true,
        max_catalog: i64::MAX,
        now: 50,
    };
    let batch = vec![
        job("user1", json!({"plan": "gold"}), "text"),
        job("user2", json!({"plan": 3}), "number"), // type conflict: this one alone rolls back
        job("nobody", json!({"plan": "x"}), "text"),
        job("user2", json!({"plan": "silver"}), "text"),
    ];
    let out = s.update_app_users_batch(&batch, vec![None, None, None, None]).await.unwrap();
    assert!(out[0].is_ok());
    assert!(matches!(out[1], Err(UserWriteError::TypeConflict { .. })));
    assert!(matches!(out[2], Err(UserWriteError::NotFound)));
    assert!(out[3].is_ok());
    let plan = |u: murmur::storage::AppUserRow| u.properties.0.get("plan").cloned();
    assert_eq!(plan(s.app_user("app1", "user1").await.unwrap().unwrap()), Some(json!("gold")));
    assert_eq!(plan(s.app_user("app1", "user2").await.unwrap().unwrap()), Some(json!("silver")));
    assert_eq!(s.property_catalog("app1").await.unwrap().len(), 1, "the conflicting type was not registered");
}

async fn users_list_pages_by_keyset(s: &Store) {
    s.insert_app(&app("app1", 10), &[]).await.unwrap();
    let names = ["Cy", "Ada", "Bo", "Ada", "Di", "Ed", "Fay"];
    for (i, n) in names.iter().enumerate() {
        s.create_app_user(&user(i, Some(n), 1_000 + (i as i64 % 3) * 10, json!({})), &[]).await.unwrap();
    }
    for (sort, descending) in
        [(SortKey::SignedUp, true), (SortKey::SignedUp, false), (SortKey::Name, false), (SortKey::Email, true)]
    {
        let mut q = UserListQuery {
            app_id: "app1",
            search: "",
            conditions: &[],
            now: 0,
            sort,
            descending,
            after: None,
            limit: 3,
        };
        let all = s
            .list_users(&UserListQuery {
                limit: 100,
                after: None,
                app_id: q.app_id,
                search: q.search,
                conditions: q.conditions,
                ..q
            })
            .await
            .unwrap();
        assert_eq!(all.len(), names.len());
        let mut paged = Vec::new();
        loop {
            let page = s.list_users(&q).await.unwrap();
            let Some(last) = page.last() else { break };
            q.after = Some((sort.value_of(last), last.id.clone()));
            paged.extend(page.into_iter().map(|u| u.id));
        }
        assert_eq!(paged, all.iter().map(|u| u.id.clone()).collect::<Vec<_>>(), "{sort:?} desc={descending}");
        for w in all.windows(2) {
            let (a, b) = (sort.value_of(&w[0]), sort.value_of(&w[1]));
            let ordered =
                if sort == SortKey::SignedUp { a.parse::<i64>().unwrap().cmp(&b.parse().unwrap()) } else { a.cmp(&b) };
            assert!(if descending { ordered.is_ge() } else { ordered.is_le() }, "{sort:?}: {a} then {b}");
        }
    }
    let q = UserListQuery {
        app_id: "app1",
        search: "ADA",
        conditions: &[],
        now: 0,
        sort: SortKey::Name,
        descending: false,
        after: None,
        limit: 10,
    };
    assert_eq!(s.count_users(&q).await.unwrap(), 2, "search ignores case");
    let q = UserListQuery { search: "u4@", ..q };
    assert_eq!(s.list_users(&q).await.unwrap()[0].user_id.as_deref(), Some("user4"));
}

async fn deliveries_once_per_whisper_and_user(s: &Store) {
    use murmur::{
        domain::whisper::from_template,
        storage::{NewDelivery, Reaction},
    };
    s.insert_app(&app("app1", 10), &[]).await.unwrap();
    for i in 1..=2 {
        s.create_app_user(&user(i, None, 1, json!({})), &[]).await.unwrap();
    }
    for w in ["w1", "w2"] {
        s.insert_whisper(w, "app1", "active", &from_template(Some("announcement"), "t1"), 10).await.unwrap();
    }
    let d = |id: &str, w: &str, u: &str, sent: bool| NewDelivery {
        id: id.into(),
        app_id: "app1".into(),
        whisper_id: w.into(),
        app_user_id: u.into(),
        revision: 1,
        rendered: format!("{{\"card\":\"{id}\"}}"),
        now: 100,
        sent,
    };
    // In one batch: a duplicate of an earlier row of the same batch loses.
    let batch = [
        d("d1", "w1", "id001", true),
        d("d2", "w1", "id001", true),
        d("d3", "w2", "id001", false),
        d("d4", "w1", "id002", false),
    ];
    assert_eq!(s.insert_deliveries_batch(&batch).await.unwrap(), [true, false, true, true]);
    // Across calls too.
    assert!(!s.insert_delivery(&d("d5", "w2", "id001", true)).await.unwrap());
    let rows = s.user_deliveries("id001", 10).await.unwrap();
    let states: Vec<_> = rows.iter().map(|r| (r.id.as_str(), r.state.as_str(), r.sent_at)).collect();
    assert!(states.contains(&("d1", "sent", Some(100))) && states.contains(&("d3", "pending", None)), "{states:?}");
    // Reactions: only the owner's, each implying the ones before.
    assert!(!s.react("id002", "d1", Reaction::Clicked, 200).await.unwrap());
    assert!(s.react("id001", "d3", Reaction::Clicked, 200).await.unwrap());
    let d3 = s.delivery("d3").await.unwrap().unwrap();
    assert_eq!((d3.state.as_str(), d3.sent_at, d3.seen_at), ("clicked", Some(200), Some(200)));
    assert!(s.react("id001", "d3", Reaction::Seen, 300).await.unwrap());
    assert_eq!(s.delivery("d3").await.unwrap().unwrap().state, "clicked", "never goes back");
}

/// A delivery `id` of whisper w1 to user `u`, as a plan makes it.
fn w1_delivery(id: &str, u: &murmur::storage::AppUserRow, sent: bool) -> murmur::storage::NewDelivery {
    murmur::storage::NewDelivery {
        id: id.into(),
        app_id: u.app_id.clone(),
        whisper_id: "w1".into(),
        app_user_id: u.id.clone(),
        revision: 1,
        rendered: "{}".into(),
        now: 20,
        sent,
    }
}

async fn events_and_their_deliveries_commit_together(s: &Store) {
    use murmur::{domain::whisper::from_template, storage::DeliveryPlan};
    s.insert_app(&app("app1", 10), &[]).await.unwrap();
    s.create_app_user(&user(1, Some("Ada"), 1, json!({"plan": "gold"})), &[]).await.unwrap();
    s.insert_whisper("w1", "app1", "active", &from_template(Some("announcement"), "t1"), 10).await.unwrap();
    // The plan sees the whole user row, read inside the transaction.
    let plan = |id: &'static str| -> Option<DeliveryPlan> {
        Some(std::sync::Arc::new(move |u: &murmur::storage::AppUserRow| {
            assert_eq!((u.given_name.as_deref(), u.properties.0.get("plan")), (Some("Ada"), Some(&json!("gold"))));
            vec![w1_delivery(id, u, true)]
        }))
    };
    let unknown_user_plan: Option<DeliveryPlan> =
        Some(std::sync::Arc::new(|_: &murmur::storage::AppUserRow| panic!("no plan runs for an unknown user")));
    let batch = [cart("user1", 20), cart("nobody", 21), cart("id001", 22), cart("user1", 23)];
    let out = s.track_batch(&batch, vec![plan("d1"), unknown_user_plan, plan("d2"), None]).await.unwrap();
    let summary: Vec<_> =
        out.iter().map(|t| (t.found, t.delivered.iter().map(|d| d.id.as_str()).collect::<Vec<_>>())).collect();
    // Two events of the same user in one batch: the first delivery wins.
    assert_eq!(summary, [(true, vec!["d1"]), (false, vec![]), (true, vec![]), (true, vec![])]);
    assert_eq!(out[0].delivered[0].state, "sent");
    assert_eq!(s.user_events("id001", 10).await.unwrap().len(), 3);
    // Once ever: a later batch makes nothing new, and still stores its event.
    let again = s.track_batch(&[cart("user1", 30)], vec![plan("d3")]).await.unwrap();
    assert!(again[0].found && again[0].delivered.is_empty());
    let ids: Vec<_> = s.user_deliveries("id001", 10).await.unwrap().into_iter().map(|d| d.id).collect();
    assert_eq!(ids, ["d1"]);
    assert_eq!(s.user_events("id001", 10).await.unwrap().len(), 4);
}

/// A batch past one statement's chunk (500 users), mixing events with
/// plans (their users' whole rows are read) and without (only the ids),
/// users named by userId and by murmur id, and unknown users: each event
/// finds its own user, and each plan sees its own user's row.
async fn a_large_batch_finds_each_events_user(s: &Store) {
    use murmur::storage::{AppUserRow, DeliveryPlan};
    s.insert_app(&app("app1", 10), &[]).await.unwrap();
    s.insert_app(&app("app2", 10), &[]).await.unwrap();
    for i in 0..1_100 {
        s.create_app_user(&user(i, Some(&format!("Name {i}")), 1, json!({"n": i})), &[]).await.unwrap();
    }
    s.insert_whisper("w1", "app1", "active", &murmur::domain::whisper::from_template(Some("announcement"), "t1"), 10)
        .await
        .unwrap();
    // The plan of user i's event checks that it sees user i's row.
    let plan = |i: usize| -> Option<DeliveryPlan> {
        Some(std::sync::Arc::new(move |u: &AppUserRow| {
            assert_eq!(
                (u.id.as_str(), u.given_name.as_deref(), u.properties.0.get("n")),
                (format!("id{i:03}").as_str(), Some(format!("Name {i}").as_str()), Some(&json!(i)))
            );
            vec![w1_delivery(&format!("d{i}"), u, false)]
        }))
    };
    let (mut batch, mut plans, mut expected) = (vec![], vec![], vec![]);
    for i in 0..1_300 {
        // Users 0..1100 exist; every third is named by murmur's id; 1100..
        // are nobody; every seventh event has a plan.
        let user_ref = if i % 3 == 0 { format!("id{i:03}") } else { format!("user{i}") };
        let mut e = cart(&user_ref, 100 + i as i64);
        if i == 17 {
            e.app_id = "app2".into(); // another app's user: not found
        }
        batch.push(e);
        plans.push((i % 7 == 0).then(|| plan(i)).flatten());
        expected.push((i < 1_100 && i != 17, i < 1_100 && i != 17 && i % 7 == 0));
    }
    let out = s.track_batch(&batch, plans).await.unwrap();
    let got: Vec<_> = out.iter().map(|t| (t.found, t.delivered.len() == 1)).collect();
    assert_eq!(got, expected);
    for i in [0, 1, 499, 500, 501, 777, 1_099] {
        let events = s.user_events(&format!("id{i:03}"), 10).await.unwrap();
        assert_eq!(events.iter().map(|e| e.created_at).collect::<Vec<_>>(), [100 + i as i64], "user {i}");
    }
    assert!(s.user_events("id017", 10).await.unwrap().is_empty());
    assert_eq!(out[700].delivered[0].id, "d700");
}

async fn smtp_settings_and_password(s: &Store) {
    use murmur::storage::email::PasswordChange;
    s.insert_teammate(&teammate("t1", "a@x.io", true), None).await.unwrap();
    s.insert_app(&app("app1", 10), &["t1"]).await.unwrap();
    s.insert_app(&app("app2", 20), &["t1"]).await.unwrap();
    assert_eq!(s.smtp_settings("app1").await.unwrap(), None, "email is off at first");
    assert_eq!(s.smtp_settings("missing").await.unwrap(), None);
    assert_eq!(s.app_name("app1").await.unwrap().as_deref(), Some("App app1"));
    assert_eq!(s.app_name("missing").await.unwrap(), None);

    let json = r#"{"host":"smtp.x.io","port":587,"security":"start_tls","username":"u","from_address":"a@x.io"}"#;
    let sealed = vec![0u8, 1, 2, 255, 254];
    assert!(s.set_smtp_settings("app1", Some(json), PasswordChange::Set(sealed.clone())).await.unwrap());
    assert_eq!(s.smtp_settings("app1").await.unwrap(), Some((json.to_string(), Some(sealed.clone()))));
    assert_eq!(s.smtp_settings("app2").await.unwrap(), None, "only that app");

    // Keep: new settings, same password.
    let json2 = json.replace("587", "2525");
    assert!(s.set_smtp_settings("app1", Some(&json2), PasswordChange::Keep).await.unwrap());
    assert_eq!(s.smtp_settings("app1").await.unwrap(), Some((json2.clone(), Some(sealed.clone()))));
    // Set replaces it; Clear removes it.
    assert!(s.set_smtp_settings("app1", Some(&json2), PasswordChange::Set(vec![7; 40])).await.unwrap());
    assert_eq!(s.smtp_settings("app1").await.unwrap().unwrap().1, Some(vec![7; 40]));
    assert!(s.set_smtp_settings("app1", Some(&json2), PasswordChange::Clear).await.unwrap());
    assert_eq!(s.smtp_settings("app1").await.unwrap(), Some((json2.clone(), None)));
    // Off: no settings (whatever the password).
    assert!(s.set_smtp_settings("app1", None, PasswordChange::Set(sealed)).await.unwrap());
    assert_eq!(s.smtp_settings("app1").await.unwrap(), None);
    assert!(s.set_smtp_settings("app1", None, PasswordChange::Clear).await.unwrap());
    // No such app: nothing written.
    assert!(!s.set_smtp_settings("missing", Some(json), PasswordChange::Keep).await.unwrap());
}

async fn migrations_are_idempotent(s: &Store) {
    s.migrate().await.unwrap();
    s.ping().await.unwrap();
}

/// The writers remember the murmur id of each userId they found
/// (`UserIds`): a userId taken over by another user after a delete, or
/// made to name a murmur id by a new user's id (looked up first), names
/// the new user at once, the ones remembered still name theirs, and what
/// was read before a delete is not taken after it.
async fn remembered_user_ids_follow_their_users(s: &Store) {
    use murmur::storage::UserIds;
    s.insert_app(&app("app1", 10), &[]).await.unwrap();
    for i in 1..=3 {
        s.create_app_user(&user(i, None, 1, json!({})), &[]).await.unwrap();
    }
    let known = std::sync::Mutex::new(UserIds::new(100));
    let batch = [cart("user1", 20), cart("user2", 21), cart("id003", 22), cart("user3", 23)];
    let out = s.track_batch_remembering(&batch, vec![None; 4], &known).await.unwrap();
    assert!(out.iter().all(|t| t.found));
    // Found by userId: remembered; by murmur id: nothing to remember.
    assert_eq!(known.lock().unwrap().len(), 3);
    let created = |id: &'static str| async move {
        s.user_events(id, 10).await.unwrap().iter().map(|e| e.created_at).collect::<Vec<_>>()
    };
    assert_eq!(created("id003").await, [23, 22]);

    // user1 deleted; a new user takes the userId.
    assert!(s.delete_app_user("app1", "user1").await.unwrap());
    let mut heir = user(1, None, 1, json!({}));
    heir.id = "id101".into();
    s.create_app_user(&heir, &[]).await.unwrap();
    // A new user whose murmur id is the userId "user2".
    let mut shadow = user(4, None, 1, json!({}));
    shadow.id = "user2".into();
    s.create_app_user(&shadow, &[]).await.unwrap();
    let out = s
        .track_batch_remembering(&[cart("user1", 30), cart("user2", 31), cart("user3", 32)], vec![None; 3], &known)
        .await
        .unwrap();
    assert!(out.iter().all(|t| t.found));
    assert_eq!(created("id101").await, [30]);
    assert_eq!(created("user2").await, [31]);
    assert_eq!(created("id002").await, [21]);
    assert_eq!(created("id003").await, [32, 23, 22]);

    // Read from the file: every userId but the one a murmur id shadows.
    let loaded = s.user_ids(100).await.unwrap();
    assert_eq!(loaded.len(), 3, "user1, user3, user4");
    let loaded = std::sync::Mutex::new(loaded);
    let out = s.track_batch_remembering(&[cart("user2", 35), cart("user4", 36)], vec![None; 2], &loaded).await.unwrap();
    assert!(out.iter().all(|t| t.found));
    // "user2" is the murmur id of the user whose userId is "user4".
    assert_eq!(created("user2").await, [36, 35, 31]);
    assert_eq!(created("id002").await, [21]);
    // Taken over under the same epoch: what was read.
    known.lock().unwrap().adopt(loaded.into_inner().unwrap());
    assert_eq!(known.lock().unwrap().len(), 3);

    // Nothing moved since: what is remembered is used as is, and a batch
    // of only those finds them all.
    let out = s.track_batch_remembering(&[cart("user1", 40), cart("user3", 41)], vec![None; 2], &known).await.unwrap();
    assert!(out.iter().all(|t| t.found));
    assert_eq!(known.lock().unwrap().len(), 3);
    assert_eq!(created("id101").await, [40, 30]);
    assert_eq!(created("id003").await, [41, 32, 23, 22]);

    // Read, then user3 deleted: what was read is older than what the
    // writers know by then, and is dropped.
    let stale = s.user_ids(100).await.unwrap();
    assert!(s.delete_app_user("app1", "user3").await.unwrap());
    let out = s.track_batch_remembering(&[cart("user1", 50), cart("user3", 51)], vec![None; 2], &known).await.unwrap();
    assert_eq!(out.iter().map(|t| t.found).collect::<Vec<_>>(), [true, false]);
    known.lock().unwrap().adopt(stale);
    let out = s.track_batch_remembering(&[cart("user3", 52)], vec![None], &known).await.unwrap();
    assert!(!out[0].found, "a deleted user's userId names nobody");
    assert_eq!(known.lock().unwrap().len(), 1);
}

conformance!(sqlite, postgres, super;
    teammates_and_owner,
    a_failed_membership_leaves_no_teammate,
    sessions,
    throttle,
    throttle_attempts_at_once_pass_only_the_allowance,
    apps_and_membership,
    api_keys,
    users_properties_and_events,
    users_list_pages_by_keyset,
    events_commit_in_batches,
    who_did_each_event_is_folded_in_later,
    a_users_events_are_read_before_and_after_their_fold,
    user_updates_commit_in_batches,
    deliveries_once_per_whisper_and_user,
    events_and_their_deliveries_commit_together,
    a_large_batch_finds_each_events_user,
    remembered_user_ids_follow_their_users,
    smtp_settings_and_password,
    migrations_are_idempotent
);

/// PostgreSQL: waits until a statement of this database waits on a lock.
async fn until_one_waits(pool: &sqlx::PgPool, what: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what} never waited");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// PostgreSQL: runs `write` while user `id001`'s delete is in progress (as
/// `delete_app_user` deletes: the app's users guarded, then the row), and
/// commits the delete once the write is seen waiting on a lock; the
/// write's result.
async fn while_user_is_deleted<T: Send + 'static>(
    s: &Store,
    write: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    let Store::Postgres(pool) = s else { unreachable!("a PostgreSQL store") };
    let mut deleting = pool.begin().await.unwrap();
    sqlx::query(s.users_guard(true).unwrap()).bind("app1").execute(&mut *deleting).await.unwrap();
    sqlx::query("DELETE FROM app_users WHERE id = 'id001'").execute(&mut *deleting).await.unwrap();
    let write = tokio::spawn(write);
    until_one_waits(pool, "the write").await;
    deleting.commit().await.unwrap();
    write.await.unwrap()
}

/// PostgreSQL: app1 with users id001 and id002, and a batch of events
/// (`values` of app, user, name, time) in flight as `track_batch` writes
/// one: the app's users guarded, the events written, not committed yet.
async fn a_batch_in_flight(s: &Store, pool: &sqlx::PgPool, values: &str) -> sqlx::Transaction<'static, sqlx::Postgres> {
    s.insert_app(&app("app1", 10), &[]).await.unwrap();
    s.create_app_user(&user(1, Some("Ada"), 1, json!({})), &[]).await.unwrap();
    s.create_app_user(&user(2, Some("Bo"), 1, json!({})), &[]).await.unwrap();
    let mut batch = pool.begin().await.unwrap();
    sqlx::query(s.users_guard(false).unwrap()).bind(vec!["app1"]).execute(&mut *batch).await.unwrap();
    sqlx::query(&format!("INSERT INTO events (app_id, app_user_id, name, created_at) VALUES {values}"))
        .execute(&mut *batch)
        .await
        .unwrap();
    batch
}

/// PostgreSQL, where events have no foreign key to their user (migration
/// 0020): deleting a user while a batch of events for them is in flight
/// waits for the batch, and the batch's events go with the user.
#[tokio::test]
async fn a_users_delete_waits_for_their_events_in_flight_and_takes_them_on_postgres() {
    let Some(db) = support::TestDb::new(support::Backend::Postgres).await else { return };
    let s = db.store().await;
    let Store::Postgres(pool) = &s else { unreachable!("a PostgreSQL store") };
    let batch = a_batch_in_flight(&s, pool, "('app1', 'id001', 'late', 30), ('app1', 'id002', 'kept', 30)").await;
    let store = s.clone();
    let delete = tokio::spawn(async move { store.delete_app_user("app1", "user1").await });
    until_one_waits(pool, "the delete").await;
    batch.commit().await.unwrap();
    assert!(delete.await.unwrap().unwrap());
    let left: Vec<(String, String)> =
        sqlx::query_as("SELECT app_user_id, name FROM events ORDER BY app_user_id").fetch_all(pool).await.unwrap();
    assert_eq!(left, [("id002".to_string(), "kept".to_string())], "no event left for the deleted user");
    s.fold_event_users("app1").await.unwrap();
    assert_eq!(who_did_what(&s).await, pairs(&[("id002", "kept")]));
    s.close().await;
}

/// PostgreSQL, where a batch of events may commit after one with higher
/// ids: the fold into who did each event waits for the app's batches in
/// flight before it reads how far to go, so none is passed over.
#[tokio::test]
async fn the_fold_waits_for_the_batches_in_flight_on_postgres() {
    let Some(db) = support::TestDb::new(support::Backend::Postgres).await else { return };
    let s = db.store().await;
    let Store::Postgres(pool) = &s else { unreachable!("a PostgreSQL store") };
    // With the lower id.
    let batch = a_batch_in_flight(&s, pool, "('app1', 'id001', 'slow', 30)").await;
    // A later batch with a higher id, committed first.
    assert_eq!(s.insert_events_batch(&[cart("user2", 31)]).await.unwrap(), [true]);
    let store = s.clone();
    let fold = tokio::spawn(async move { store.fold_event_users("app1").await });
    until_one_waits(pool, "the fold").await;
    batch.commit().await.unwrap();
    assert_eq!(fold.await.unwrap().unwrap(), 2);
    assert_eq!(who_did_what(&s).await, pairs(&[("id001", "slow"), ("id002", "item-in-cart")]));
    s.close().await;
}

/// PostgreSQL: an event for a user whose delete is in progress waits for
/// it and then finds no user, rather than failing on the events' foreign
/// key (the fuzz saw that as a 500).
#[tokio::test]
async fn an_event_racing_its_users_delete_finds_no_user_on_postgres() {
    let Some(db) = support::TestDb::new(support::Backend::Postgres).await else { return };
    let s = db.store().await;
    s.insert_app(&app("app1", 10), &[]).await.unwrap();
    s.create_app_user(&user(1, Some("Ada"), 1, json!({})), &[]).await.unwrap();
    let event = PendingEvent {
        app_id: "app1".into(),
        user_ref: "user1".into(),
        name: "item-in-cart".into(),
        at: 20,
        properties: None,
        max_catalog: i64::MAX,
    };
    let store = s.clone();
    let tracked = while_user_is_deleted(&s, async move { store.track_batch(&[event], vec![None]).await }).await;
    assert!(!tracked.expect("no error: the user is simply gone")[0].found);
    s.close().await;
}

/// PostgreSQL: making everyone due for a property-match whisper while one
/// user's delete is in progress schedules the others, without the
/// foreign-key failure the fuzz saw as a 500 on saving a whisper.
#[tokio::test]
async fn scheduling_everyone_racing_a_delete_skips_that_user_on_postgres() {
    use murmur::domain::whisper::{from_template, Trigger};
    let Some(db) = support::TestDb::new(support::Backend::Postgres).await else { return };
    let s = db.store().await;
    s.insert_app(&app("app1", 10), &[]).await.unwrap();
    for i in 1..=3 {
        s.create_app_user(&user(i, None, 1, json!({})), &[]).await.unwrap();
    }
    let mut draft = from_template(None, "t1");
    draft.trigger = Trigger::PropertyMatch;
    s.insert_whisper("w1", "app1", "active", &draft, 10).await.unwrap();
    let store = s.clone();
    let scheduled = while_user_is_deleted(&s, async move { store.schedule_everyone("app1", "w1", 50).await }).await;
    assert_eq!(scheduled.expect("no error: the deleted user is skipped"), 2);
    s.close().await;
}

/// What PostgreSQL refuses of the input itself is told apart from a
/// failure: U+0000 in text is a 400 that says so, not a 500.
#[tokio::test]
async fn a_nul_the_database_refuses_is_the_inputs_fault_on_postgres() {
    let Some(db) = support::TestDb::new(support::Backend::Postgres).await else { return };
    let s = db.store().await;
    let e = s.insert_app(&AppRow { name: "a\0b".into(), ..app("app1", 10) }, &[]).await.unwrap_err();
    assert!(e.refused_nul(), "{e}");
    assert!(!e.foreign_key_failed());
    let answer = murmur::server::auth::internal(e);
    assert!(matches!(&answer, murmur::error::AppError::Request(m) if m.contains("U+0000")), "{answer:?}");
    assert!(matches!(murmur::server::auth::internal(StoreError::Duplicate), murmur::error::AppError::Internal));
    s.close().await;
}

// The audit log and a teammate's own sessions: each audited write stores
// its row in its own transaction (a write that fails or changes nothing
// leaves no row), and the log reads newest first by keyset.
mod audit_log {
    use murmur::{
        domain::audit::AuditAction,
        storage::{AuditEntry, ServerOnlyNames, Store, StoreError},
    };

    use super::{app, key, teammate};

    fn entry(app_id: Option<&str>, action: AuditAction, detail: &str, at: i64) -> AuditEntry {
        AuditEntry {
            app_id: app_id.map(String::from),
            actor_id: "t1".into(),
            actor_name: "Name t1".into(),
            action,
            detail: detail.into(),
            at,
        }
    }

    async fn actions(s: &Store, app_id: &str) -> Vec<(String, String)> {
        s.audit_log(app_id, None, 1_000).await.unwrap().into_iter().map(|r| (r.action, r.detail)).collect()
    }

    fn pair(action: AuditAction, detail: &str) -> (String, String) {
        (action.code().to_string(), detail.to_string())
    }

    pub async fn audited_writes_commit_with_their_row(s: &Store) {
        s.insert_teammate(&teammate("t1", "a@x.io", true), None).await.unwrap();
        s.insert_app(&app("app1", 10), &["t1"]).await.unwrap();
        let created = entry(Some("app1"), AuditAction::ApiKeyCreated, "backend (k1)", 100);
        s.insert_api_key_audited(&key("k1", "app1", 100), &created).await.unwrap();
        // A duplicate key fails, and takes its row with it.
        let again = entry(Some("app1"), AuditAction::ApiKeyCreated, "again (k1)", 110);
        assert!(matches!(s.insert_api_key_audited(&key("k1", "app1", 110), &again).await, Err(StoreError::Duplicate)));
        let revoked = entry(Some("app1"), AuditAction::ApiKeyRevoked, "backend (k1)", 120);
        assert!(s.revoke_api_key_audited("app1", "k1", 120, &revoked).await.unwrap());
        assert!(!s.revoke_api_key_audited("app1", "k1", 130, &revoked).await.unwrap(), "already revoked: no row");
        let rolled = entry(Some("app1"), AuditAction::IdentitySecretRolled, "", 140);
        assert!(s.set_identity_secret_audited("app1", &[4, 4], &rolled).await.unwrap());
        assert!(!s.set_identity_secret_audited("missing", &[4, 4], &rolled).await.unwrap());
        assert_eq!(s.app_of("app1", "t1").await.unwrap().unwrap().identity_secret_enc, vec![4, 4]);
        let off = entry(Some("app1"), AuditAction::IdentityNotRequired, "", 150);
        assert!(s.set_identity_enforced_audited("app1", false, &off).await.unwrap());
        assert!(!s.widget_app("app1").await.unwrap().unwrap().identity_enforced);
        assert!(!s.set_identity_enforced_audited("missing", true, &off).await.unwrap());
        let names = ServerOnlyNames { properties: vec!["plan".into()], events: vec![] };
        let changed = entry(Some("app1"), AuditAction::ServerOnlyNamesChanged, "properties: plan; events: none", 160);
        s.set_server_only_names("app1", &names, 160, &changed).await.unwrap();
        assert_eq!(s.server_only_names("app1").await.unwrap(), names);
        let added = entry(Some("app1"), AuditAction::TeammateAdded, "Name t2 <b@x.io>", 170);
        s.insert_teammate_audited(&teammate("t2", "b@x.io", false), "app1", &added).await.unwrap();
        assert_eq!(s.app_teammates("app1").await.unwrap().len(), 2);
        // A taken email: no teammate, no row.
        let taken = entry(Some("app1"), AuditAction::TeammateAdded, "taken", 175);
        assert!(matches!(
            s.insert_teammate_audited(&teammate("t3", "b@x.io", false), "app1", &taken).await,
            Err(StoreError::Duplicate)
        ));
        let removed = entry(Some("app1"), AuditAction::TeammateRemoved, "Name t2 <b@x.io>", 180);
        assert!(s.delete_teammate_audited("t2", &removed).await.unwrap());
        assert!(!s.delete_teammate_audited("t2", &removed).await.unwrap(), "gone: no row");
        assert!(!s.delete_teammate_audited("t1", &removed).await.unwrap(), "the owner stays: no row");
        assert_eq!(
            actions(s, "app1").await,
            [
                pair(AuditAction::TeammateRemoved, "Name t2 <b@x.io>"),
                pair(AuditAction::TeammateAdded, "Name t2 <b@x.io>"),
                pair(AuditAction::ServerOnlyNamesChanged, "properties: plan; events: none"),
                pair(AuditAction::IdentityNotRequired, ""),
                pair(AuditAction::IdentitySecretRolled, ""),
                pair(AuditAction::ApiKeyRevoked, "backend (k1)"),
                pair(AuditAction::ApiKeyCreated, "backend (k1)"),
            ]
        );
        let newest = &s.audit_log("app1", None, 1).await.unwrap()[0];
        assert_eq!(
            (newest.app_id.as_deref(), newest.actor_id.as_str(), newest.actor_name.as_str(), newest.at),
            (Some("app1"), "t1", "Name t1", 180)
        );
    }

    pub async fn password_change_and_sign_out_everywhere(s: &Store) {
        s.insert_teammate(&teammate("t1", "a@x.io", true), None).await.unwrap();
        s.insert_teammate(&teammate("t2", "b@x.io", false), None).await.unwrap();
        s.insert_app(&app("app1", 10), &["t1", "t2"]).await.unwrap();
        for h in ["here", "laptop", "phone"] {
            s.insert_session(h, "t1", 100, 10_000).await.unwrap();
        }
        s.insert_session("mate", "t2", 100, 10_000).await.unwrap();
        assert_eq!(s.count_sessions("t1", 200, 0).await.unwrap(), 3);
        assert_eq!(s.count_sessions("t1", 10_000, 0).await.unwrap(), 0, "expired");
        assert_eq!(s.count_sessions("t1", 200, 100).await.unwrap(), 0, "idle");
        let changed = entry(None, AuditAction::PasswordChanged, "", 300);
        // The hash moved on since it was checked: nothing happens.
        assert_eq!(s.change_password("t1", "$argon2id$other", "$argon2id$new", "here", &changed).await.unwrap(), None);
        assert_eq!(s.count_sessions("t1", 200, 0).await.unwrap(), 3);
        assert!(actions(s, "app1").await.is_empty());
        assert_eq!(
            s.change_password("t1", "$argon2id$fake", "$argon2id$new", "here", &changed).await.unwrap(),
            Some(2)
        );
        assert_eq!(s.teammate_by_id("t1").await.unwrap().unwrap().password_hash, "$argon2id$new");
        assert_eq!(s.session_teammate("here", 200).await.unwrap().unwrap().id, "t1");
        assert!(s.session_teammate("laptop", 200).await.unwrap().is_none());
        assert!(s.session_teammate("phone", 200).await.unwrap().is_none());
        assert_eq!(s.session_teammate("mate", 200).await.unwrap().unwrap().id, "t2", "others untouched");
        let ended = entry(None, AuditAction::SignedOutEverywhere, "", 400);
        assert_eq!(s.end_sessions("t1", &ended).await.unwrap(), 1);
        assert!(s.session_teammate("here", 200).await.unwrap().is_none());
        assert_eq!(s.session_teammate("mate", 200).await.unwrap().unwrap().id, "t2");
        // Deployment-wide rows show in every app's log.
        let rows = s.audit_log("app1", None, 10).await.unwrap();
        assert_eq!(
            rows.iter().map(|r| (r.action.as_str(), r.app_id.clone(), r.at)).collect::<Vec<_>>(),
            [("sessions.ended", None, 400), ("password.changed", None, 300)]
        );
        assert_eq!(s.audit_log("app-unknown", None, 10).await.unwrap().len(), 2);
    }

    pub async fn the_log_pages_by_keyset(s: &Store) {
        // Rows of two apps and deployment-wide ones, several at one time.
        s.insert_teammate(&teammate("t1", "a@x.io", true), None).await.unwrap();
        let mut written = vec![];
        for i in 0..25i64 {
            let (app_id, detail) = match i % 5 {
                0 => (None, format!("wide {i}")),
                4 => (Some("app2"), format!("other {i}")),
                _ => (Some("app1"), format!("own {i}")),
            };
            let at = 1_000 + i / 3;
            s.end_sessions("t1", &entry(app_id, AuditAction::SignedOutEverywhere, &detail, at)).await.unwrap();
            if app_id != Some("app2") {
                written.push(detail);
            }
        }
        written.reverse();
        let mut seen = vec![];
        let mut before = None;
        loop {
            let page = s.audit_log("app1", before, 4).await.unwrap();
            assert!(page.len() <= 4);
            let Some(last) = page.last() else { break };
            before = Some((last.at, last.id));
            seen.extend(page.into_iter().map(|r| r.detail));
        }
        assert_eq!(seen, written, "newest first, by time then id, each row once");
    }
}

conformance!(audit_sqlite, audit_postgres, super::audit_log;
    audited_writes_commit_with_their_row,
    password_change_and_sign_out_everywhere,
    the_log_pages_by_keyset
);
