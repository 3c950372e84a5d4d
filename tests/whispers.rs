//! Whisper authoring through its server functions, on both backends:
//! validation (nothing saved on bad input), save, activate, the active
//! limit, pause/resume, duplicate, delete, scoping to the app.

mod support;

use murmur::domain::{
    conditions::{Condition, Operator},
    whisper::{from_template, Button, ButtonAction, Trigger, WhisperDraft},
};
use serde_json::Value;
use support::{spawn_app, Backend, TestApp, TestDb};

async fn save(
    app: &TestApp,
    owner: &str,
    app_id: &str,
    id: &str,
    d: &WhisperDraft,
    activate: bool,
) -> support::Response {
    let draft = serde_json::to_string(d).unwrap();
    let activate = activate.to_string();
    app.call(
        "whispers/save",
        &[
            ("input[app_id]", app_id),
            ("input[whisper_id]", id),
            ("input[draft]", &draft),
            ("input[activate]", &activate),
        ],
        Some(owner),
        &[],
    )
    .await
}

async fn list(app: &TestApp, owner: &str, app_id: &str) -> Vec<Value> {
    let r = app.call("whispers/list", &[("input[app_id]", app_id)], Some(owner), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json().as_array().unwrap().clone()
}

async fn status(app: &TestApp, owner: &str, app_id: &str, id: &str, to: &str) -> support::Response {
    app.call(
        "whispers/status",
        &[("input[app_id]", app_id), ("input[whisper_id]", id), ("input[status]", to)],
        Some(owner),
        &[],
    )
    .await
}

async fn authoring(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let app_id = app.call("apps/create", &[("input[name]", "Shop")], Some(&owner), &[]).await.json()["app"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let owner_id = app.state.store.owner().await.unwrap().unwrap().id;

    // Bad input: each problem named, nothing saved.
    let mut bad = from_template(None, &owner_id);
    bad.all_users = true;
    bad.trigger = Trigger::PropertyMatch;
    bad.buttons = vec![Button { label: "Go".into(), action: ButtonAction::Link("javascript:alert(1)".into()) }];
    let r = save(&app, &owner, &app_id, "new", &bad, false).await;
    assert_eq!(r.status, 422, "{}", r.body);
    for needle in ["Enter a name.", "Enter the message text.", "must be triggered by an event", "http:// or https://"] {
        assert!(r.body.contains(needle), "{needle}: {}", r.body);
    }
    let mut wrong_type = from_template(Some("rating"), &owner_id);
    wrong_type.conditions =
        vec![Condition { property: "signedUpAt".into(), operator: Operator::Contains, value: "x".into() }];
    assert_eq!(save(&app, &owner, &app_id, "new", &wrong_type, false).await.status, 422);
    let mut stranger = from_template(Some("rating"), "not-a-teammate");
    stranger.name = "x".into();
    let r = save(&app, &owner, &app_id, "new", &stranger, false).await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("sender"));
    assert!(list(&app, &owner, &app_id).await.is_empty());

    // Save as draft, then activate; stats are zero from (absent) deliveries.
    let d = from_template(Some("rating"), &owner_id);
    let r = save(&app, &owner, &app_id, "new", &d, false).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id: String = serde_json::from_str(&r.body).unwrap();
    let w = &list(&app, &owner, &app_id).await[0];
    assert_eq!((w["status"].as_str(), w["exposed"].as_i64(), w["replied"].as_i64()), (Some("draft"), Some(0), Some(0)));
    assert_eq!(w["audience"], "signedUpAt more than 5 days ago");
    assert_eq!(status(&app, &owner, &app_id, &id, "active").await.status, 200);
    let stored = app.state.store.whisper(&app_id, &id).await.unwrap().unwrap();
    assert_eq!((stored.status.as_str(), stored.revision), ("active", 1));

    // Editing an active whisper makes a new revision (deliveries keep theirs).
    let mut edited = d.clone();
    edited.text = "Rate us, {{ firstName || friend }}?".into();
    assert_eq!(save(&app, &owner, &app_id, &id, &edited, false).await.status, 200);
    let stored = app.state.store.whisper(&app_id, &id).await.unwrap().unwrap();
    assert_eq!((stored.revision, stored.definition.0.text.as_str()), (2, "Rate us, {{ firstName || friend }}?"));

    // The active limit.
    let r = app
        .call("apps/whisper-limit", &[("input[app_id]", &app_id), ("input[max_active]", "1")], Some(&owner), &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let copy: String = serde_json::from_str(
        &app.call("whispers/duplicate", &[("input[app_id]", &app_id), ("input[whisper_id]", &id)], Some(&owner), &[])
            .await
            .body,
    )
    .unwrap();
    let r = status(&app, &owner, &app_id, &copy, "active").await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("limited to 1 active whispers"));
    assert_eq!(app.state.store.whisper(&app_id, &copy).await.unwrap().unwrap().status, "draft", "nothing changed");
    assert_eq!(status(&app, &owner, &app_id, &id, "paused").await.status, 200);
    assert_eq!(status(&app, &owner, &app_id, &copy, "active").await.status, 200);
    assert_eq!(status(&app, &owner, &app_id, &copy, "bogus").await.status, 422);

    // Another app's teammate cannot see or touch these whispers.
    let r = app.add_teammate(&app_id, &owner, "Tess", "tess@example.com", "tess password 1").await;
    assert_eq!(r.status, 200);
    let other = app.call("apps/create", &[("input[name]", "Other")], Some(&owner), &[]).await.json()["app"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let tess = app.login("tess@example.com", "tess password 1").await.session_cookie().unwrap();
    assert_eq!(app.call("whispers/list", &[("input[app_id]", &other)], Some(&tess), &[]).await.status, 404);
    let other_whisper = {
        let r = save(&app, &owner, &other, "new", &from_template(Some("welcome"), &owner_id), false).await;
        serde_json::from_str::<String>(&r.body).unwrap()
    };
    // Through her own app's id, another app's whisper is not found either.
    assert_eq!(status(&app, &tess, &app_id, &other_whisper, "active").await.status, 404);
    let r = app
        .call("whispers/delete", &[("input[app_id]", &app_id), ("input[whisper_id]", &other_whisper)], Some(&tess), &[])
        .await;
    assert_eq!(r.status, 404);
    assert!(app.state.store.whisper(&other, &other_whisper).await.unwrap().is_some());

    // Delete.
    let r = app
        .call("whispers/delete", &[("input[app_id]", &app_id), ("input[whisper_id]", &copy)], Some(&owner), &[])
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(list(&app, &owner, &app_id).await.len(), 1);
    app.state.store.close().await;
}

#[tokio::test]
async fn authoring_on_sqlite() {
    authoring(Backend::Sqlite).await;
}

#[tokio::test]
async fn authoring_on_postgres() {
    authoring(Backend::Postgres).await;
}
