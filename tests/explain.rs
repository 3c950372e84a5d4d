//! "Why did (or didn't) this user get this message?" on both backends:
//! the planner's decisions are kept (first match, latest miss), the answer
//! names the trigger, each condition with the user's value then, the
//! once-only rule and the delivery's states; manual messages say whether
//! the user was a recipient; decisions past the retention are purged; an
//! app's teammates can ask about its users only.

mod support;

use std::time::Duration;

use murmur::{
    domain::{
        conditions::{Condition, Operator},
        explain::{ConditionResult, Evaluation, Outcome, TriggerFact},
        manual::{Audience, Kind, MessageDraft},
        properties::PropType,
        whisper::{from_template, Trigger, WhisperDraft},
    },
    storage::EvaluationRecord,
};
use serde_json::{json, Value};
use support::{
    shop::{create_user as user, rest, save_message, save_whisper, shop, Shop},
    spawn_app, Backend, TestApp, TestDb,
};

const DAY: i64 = 86_400_000;

async fn bounded(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(120), test).await.expect("the test did not finish within 120 s");
}

fn pricing_whisper(shop: &Shop) -> WhisperDraft {
    let mut d = from_template(None, &shop.owner_id);
    d.name = "Pro tips".into();
    d.all_users = false;
    d.conditions = vec![Condition { property: "plan".into(), operator: Operator::Is, value: "pro".into() }];
    d.trigger = Trigger::Event("viewed-pricing".into());
    d.text = "Hi {{ firstName || there }}, here is a tip.".into();
    d.buttons = vec![];
    d
}

async fn track(app: &TestApp, shop: &Shop, user_id: &str, name: &str) {
    let r = rest(app, shop, "POST", &format!("/v1.1/appusers/{user_id}/events"), json!({ "name": name })).await;
    assert!(r.status < 300, "{}", r.body);
}

async fn why(app: &TestApp, shop: &Shop, who: &str, user: &str, kind: &str, id: &str) -> support::Response {
    app.call(
        "why/explain",
        &[("input[app_id]", &shop.app_id), ("input[user]", user), ("input[kind]", kind), ("input[id]", id)],
        Some(who),
        &[],
    )
    .await
}

async fn answer(app: &TestApp, shop: &Shop, user: &str, kind: &str, id: &str) -> Value {
    let r = why(app, shop, &shop.owner, user, kind, id).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["answer"].clone()
}

fn texts(a: &Value) -> Vec<String> {
    a["steps"].as_array().unwrap().iter().map(|s| s["text"].as_str().unwrap().to_string()).collect()
}

fn conditions(a: &Value) -> Vec<Value> {
    a["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["conditions"].as_array().cloned().unwrap_or_default())
        .collect()
}

async fn whispers_explained(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let shop = shop(&app, &owner, "Shop").await;
    user(&app, &shop, "ann", "Ann", "pro").await;
    user(&app, &shop, "bob", "Bob", "free").await;
    user(&app, &shop, "cy", "Cy", "pro").await;
    user(&app, &shop, "dan", "Dan", "pro").await;
    let whisper = save_whisper(&app, &shop, &pricing_whisper(&shop)).await;

    // Ann matched: the trigger, every condition passed with her value, the card.
    track(&app, &shop, "ann", "viewed-pricing").await;
    let a = answer(&app, &shop, "ann", "whisper", &whisper).await;
    assert_eq!(a["verdict"], "waiting", "{a}");
    let t = texts(&a);
    assert!(t[0].contains("Ann tracked the event \u{201c}viewed-pricing\u{201d}"), "{t:?}");
    assert!(t.iter().any(|s| s.contains("passed every condition (1)")), "{t:?}");
    assert!(t.iter().any(|s| s.starts_with("Card made on")), "{t:?}");
    let c = conditions(&a);
    assert_eq!(
        (c[0]["property"].as_str(), c[0]["value"].as_str(), c[0]["passed"].as_bool()),
        (Some("plan"), Some("pro"), Some(true))
    );

    // Bob failed the condition: said so, with his value then.
    track(&app, &shop, "bob", "viewed-pricing").await;
    let a = answer(&app, &shop, "bob", "whisper", &whisper).await;
    assert_eq!(a["verdict"], "no");
    assert!(a["headline"].as_str().unwrap().contains("Bob was not in the audience"), "{a}");
    let c = conditions(&a);
    assert_eq!((c[0]["value"].as_str(), c[0]["passed"].as_bool()), (Some("free"), Some(false)), "{a}");
    // His value changes later: the answer still shows the value as evaluated.
    let r = rest(&app, &shop, "PUT", "/v1.1/appusers/bob", json!({"properties": {"plan": "team"}})).await;
    assert!(r.status < 300, "{}", r.body);
    assert_eq!(conditions(&answer(&app, &shop, "bob", "whisper", &whisper).await)[0]["value"], "free");

    // Cy got it, then fired it again on another day: already received, once only.
    track(&app, &shop, "cy", "viewed-pricing").await;
    app.clock.advance_ms(DAY);
    let r = rest(&app, &shop, "PUT", "/v1.1/appusers/cy", json!({"properties": {"plan": "free"}})).await;
    assert!(r.status < 300, "{}", r.body);
    track(&app, &shop, "cy", "viewed-pricing").await;
    let a = answer(&app, &shop, "cy", "whisper", &whisper).await;
    let t = texts(&a);
    assert!(t.iter().any(|s| s.starts_with("Later, on") && s.contains("no longer matched")), "{t:?}");
    assert!(t.iter().any(|s| s.contains("goes to each user once")), "{t:?}");
    // The decision that made the card is the one shown first (plan was pro then).
    assert_eq!(conditions(&a)[0]["value"], "pro", "{a}");

    // Dan never tracked it.
    let a = answer(&app, &shop, "dan", "whisper", &whisper).await;
    assert_eq!(a["verdict"], "no");
    assert!(a["headline"].as_str().unwrap().contains("never tracked \u{201c}viewed-pricing\u{201d}"), "{a}");

    // A property-match whisper: a miss is computed from the current values
    // (every change is checked at once); the match that made the card is kept.
    let mut gold = pricing_whisper(&shop);
    gold.name = "Gold perks".into();
    gold.trigger = Trigger::PropertyMatch;
    gold.conditions = vec![Condition { property: "plan".into(), operator: Operator::Is, value: "gold".into() }];
    let gold = save_whisper(&app, &shop, &gold).await;
    let a = answer(&app, &shop, "dan", "whisper", &gold).await;
    assert_eq!(a["headline"], "No — Dan is not in the audience.", "{a}");
    assert!(texts(&a)[0].starts_with("Checked against Dan's values now"), "{a}");
    assert_eq!(conditions(&a)[0]["value"], "pro");
    let r = rest(&app, &shop, "PUT", "/v1.1/appusers/dan", json!({"properties": {"plan": "gold"}})).await;
    assert!(r.status < 300, "{}", r.body);
    let a = answer(&app, &shop, "dan", "whisper", &gold).await;
    assert!(texts(&a)[0].contains("Dan's properties were checked on"), "{a}");
    assert_eq!(conditions(&a)[0]["value"], "gold");
    assert!(texts(&a).iter().any(|t| t.starts_with("Card made on")), "{a}");

    // Paused: said first.
    let r = app
        .call(
            "whispers/status",
            &[("input[app_id]", &shop.app_id), ("input[whisper_id]", &whisper), ("input[status]", "paused")],
            Some(&shop.owner),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(texts(&answer(&app, &shop, "dan", "whisper", &whisper).await)[0].starts_with("Paused since"));

    // Bad input and other apps: clear errors, nothing shown.
    let r = why(&app, &shop, &shop.owner, "nobody", "whisper", &whisper).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("No user"), "{}", r.body);
    let r = why(&app, &shop, &shop.owner, "ann", "poem", &whisper).await;
    assert_eq!(r.status, 422, "{}", r.body);
    let other = support::shop::shop(&app, &owner, "Other").await;
    let r = why(&app, &other, &owner, "ann", "whisper", &whisper).await;
    assert!(r.status == 404 || r.status == 422, "another app's whisper: {} {}", r.status, r.body);
    // A teammate of another app only cannot ask about this one.
    let tess = app.add_tess(&other.app_id, &owner).await;
    let r = why(&app, &shop, &tess, "ann", "whisper", &whisper).await;
    assert_eq!(r.status, 404, "a teammate of another app: {}", r.body);

    // Retention: decisions older than 90 days are purged.
    app.clock.advance_ms(91 * DAY);
    assert!(app.state.engine.purge_decisions().await.unwrap() >= 4);
    let (m, u) =
        app.state.store.evaluations(&shop.app_id, &whisper, &support_user(&app, &shop, "bob").await).await.unwrap();
    assert!(m.is_none() && u.is_none());
}

async fn support_user(app: &TestApp, shop: &Shop, user_id: &str) -> String {
    app.state.store.app_user(&shop.app_id, user_id).await.unwrap().unwrap().id
}

async fn messages_explained(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let shop = shop(&app, &owner, "Shop").await;
    let ann = user(&app, &shop, "ann", "Ann", "pro").await;
    user(&app, &shop, "bob", "Bob", "free").await;
    let draft = |title: &str, audience: Audience| MessageDraft {
        title: title.into(),
        sender_id: shop.owner_id.clone(),
        kind: Kind::Chat,
        body: "Hello".into(),
        audience,
        push: false,
    };
    let chosen = save_message(&app, &shop, &draft("For Ann", Audience::Users { ids: vec![ann.clone()] }), "now").await;
    let segment = save_message(
        &app,
        &shop,
        &draft(
            "Pro news",
            Audience::Segment {
                conditions: vec![Condition { property: "plan".into(), operator: Operator::Is, value: "pro".into() }],
                not_received: vec![],
            },
        ),
        "now",
    )
    .await;
    let draft_id =
        save_message(&app, &shop, &draft("Later", Audience::Users { ids: vec![ann.clone()] }), "draft").await;
    // Each send fixes its recipients in the background; run it here too until
    // both are sent (a bounded wait on the condition).
    for _ in 0..200 {
        app.state.engine.run_sends().await.unwrap();
        let sent = app.state.store.manual(&shop.app_id, &chosen).await.unwrap().unwrap().state == "sent"
            && app.state.store.manual(&shop.app_id, &segment).await.unwrap().unwrap().state == "sent";
        if sent {
            break;
        }
        tokio::task::yield_now().await;
    }
    let a = answer(&app, &shop, "ann", "message", &chosen).await;
    assert_ne!(a["verdict"], "no", "{a}");
    assert!(texts(&a)[0].contains("Ann was among the 1 recipients"), "{a}");
    let a = answer(&app, &shop, "bob", "message", &chosen).await;
    assert_eq!(a["verdict"], "no");
    assert!(texts(&a).iter().any(|t| t.contains("Bob was not chosen")), "{a}");
    let a = answer(&app, &shop, "bob", "message", &segment).await;
    assert_eq!(a["verdict"], "no");
    let c = conditions(&a);
    assert_eq!((c[0]["value"].as_str(), c[0]["passed"].as_bool()), (Some("free"), Some(false)), "{a}");
    let a = answer(&app, &shop, "ann", "message", &draft_id).await;
    assert!(a["headline"].as_str().unwrap().contains("is a draft"), "{a}");
    // The choices list the whispers and the messages that went out.
    let r = app.call("why/choices", &[("input[app_id]", &shop.app_id)], Some(&shop.owner), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let labels: Vec<String> =
        r.json().as_array().unwrap().iter().map(|c| c["label"].as_str().unwrap().to_string()).collect();
    assert!(labels.contains(&"Message: For Ann (sent)".to_string()), "{labels:?}");
    assert!(!labels.iter().any(|l| l.contains("Later")), "drafts are not offered: {labels:?}");
}

fn record(user: &str, at: i64, outcome: Outcome, value: &str) -> EvaluationRecord {
    EvaluationRecord {
        app_id: "app".into(),
        whisper_id: "w".into(),
        app_user_id: user.into(),
        evaluation: Evaluation {
            at,
            revision: 1,
            trigger: TriggerFact::Launch,
            all_users: false,
            conditions: vec![ConditionResult {
                property: "plan".into(),
                operator: Operator::Is,
                operand: "pro".into(),
                ty: PropType::Text,
                value: Some(value.into()),
                passed: outcome == Outcome::Matched,
            }],
            outcome,
        },
    }
}

/// The kept decisions: the first match, the latest miss, in one batch or
/// across batches, scoped to the app.
pub async fn decisions_kept(store: &murmur::storage::Store) {
    let batch = [
        record("u", 20, Outcome::Matched, "pro-2"),
        record("u", 10, Outcome::Matched, "pro-1"),
        record("u", 5, Outcome::NotMatched, "free-1"),
        record("u", 30, Outcome::NotMatched, "free-3"),
        record("u", 25, Outcome::MatchesAt { at: 99 }, "free-2"),
    ];
    store.record_evaluations(&batch).await.unwrap();
    store.record_evaluations(&[record("u", 40, Outcome::Matched, "pro-4")]).await.unwrap();
    store.record_evaluations(&[record("u", 1, Outcome::NotMatched, "free-0")]).await.unwrap();
    let (m, u) = store.evaluations("app", "w", "u").await.unwrap();
    assert_eq!(m.unwrap().conditions[0].value.as_deref(), Some("pro-1"), "the first match is kept");
    assert_eq!(u.unwrap().conditions[0].value.as_deref(), Some("free-3"), "the latest miss is kept");
    assert_eq!(store.evaluations("other-app", "w", "u").await.unwrap(), (None, None));
    store.record_evaluations(&[record("u", 50, Outcome::NotMatched, "free-5")]).await.unwrap();
    assert_eq!(store.evaluations("app", "w", "u").await.unwrap().1.unwrap().at, 50);
    assert_eq!(store.purge_evaluations(45).await.unwrap(), 1, "the match at 10 goes; the miss at 50 stays");
    let (m, u) = store.evaluations("app", "w", "u").await.unwrap();
    assert!(m.is_none() && u.is_some());
    // A big batch (more rows than one statement holds) goes in whole.
    let many: Vec<EvaluationRecord> =
        (0..450).map(|i| record(&format!("user-{i}"), 100 + i, Outcome::NotMatched, "free")).collect();
    store.record_evaluations(&many).await.unwrap();
    assert!(store.evaluations("app", "w", "user-449").await.unwrap().1.is_some());
}

conformance!(sqlite, postgres, super; decisions_kept);

#[tokio::test]
async fn whispers_explained_on_sqlite() {
    bounded(whispers_explained(Backend::Sqlite)).await;
}

#[tokio::test]
async fn whispers_explained_on_postgres() {
    bounded(whispers_explained(Backend::Postgres)).await;
}

#[tokio::test]
async fn messages_explained_on_sqlite() {
    bounded(messages_explained(Backend::Sqlite)).await;
}

#[tokio::test]
async fn messages_explained_on_postgres() {
    bounded(messages_explained(Backend::Postgres)).await;
}
