//! The two condition evaluators must agree: for random users and random
//! condition lists, the in-memory evaluator, SQL on SQLite and SQL on
//! PostgreSQL select exactly the same users.

mod support;

use std::collections::{BTreeSet, HashMap};

use murmur::{
    domain::{
        conditions::{matches_all, Condition, Operator},
        properties::{builtin, PropType, Version, BUILTINS},
    },
    storage::{
        audience::{RowProps, SortKey, UserListQuery},
        AppRow, AppUserChanges, NewAppUser, Store,
    },
};
use serde_json::{json, Map};
use support::{Backend, TestDb, START_MS};

const DAY: i64 = 86_400_000;

/// xorshift64*: small, deterministic, good enough to explore.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const TEXTS: &[&str] =
    &["Ada", "ada", "Adam", "Bob", "Élodie", "gold", "Gold plus", "silver", "web", "ios", "a@x.io", "b@y.io"];
const NUMBERS: &[f64] = &[0.0, 1.0, 2.5, 3.0, 10.0, -4.0];
const VERSIONS: &[&str] = &["1", "1.0", "1.2", "1.10", "2.0.1", "10"];
const CUSTOM: &[(&str, PropType)] =
    &[("plan", PropType::Text), ("seats", PropType::Number), ("vip", PropType::Boolean), ("renewsAt", PropType::Date)];

fn random_user(rng: &mut Rng, app_id: &str, i: usize) -> NewAppUser {
    let maybe = |rng: &mut Rng, v: &str| if rng.chance(75) { Some(v.to_string()) } else { None };
    let mut props = Map::new();
    if rng.chance(70) {
        props.insert("plan".into(), json!(rng.pick(&["gold", "Gold plus", "silver", "Ada"])));
    }
    if rng.chance(70) {
        props.insert("seats".into(), json!(*rng.pick(NUMBERS)));
    }
    if rng.chance(70) {
        props.insert("vip".into(), json!(rng.chance(50)));
    }
    if rng.chance(70) {
        props.insert("renewsAt".into(), json!(START_MS + (rng.below(80 * DAY as u64) as i64) - 40 * DAY));
    }
    let version = if rng.chance(80) { Some(rng.pick(VERSIONS).to_string()) } else { None };
    let given = rng.pick(&["Ada", "ada", "Adam", "Bob", "Élodie"]).to_string();
    let email = rng.pick(&["a@x.io", "b@y.io"]).to_string();
    let platform = rng.pick(&["web", "ios"]).to_string();
    NewAppUser {
        id: format!("{i:08}"),
        app_id: app_id.into(),
        user_id: Some(format!("user-{i}")),
        given_name: maybe(rng, &given),
        surname: None,
        email: maybe(rng, &email),
        signed_up_at: START_MS - rng.below(40 * DAY as u64) as i64,
        app_version_key: version.as_deref().and_then(Version::parse).map(|v| v.sort_key()),
        app_version: version,
        platform: maybe(rng, &platform),
        properties: props,
        now: START_MS,
    }
}

fn random_condition(rng: &mut Rng) -> Condition {
    let names: Vec<(&str, PropType)> =
        BUILTINS.iter().filter(|b| b.name != "surname").map(|b| (b.name, b.ty)).chain(CUSTOM.iter().copied()).collect();
    let (property, ty) = *rng.pick(&names);
    let operator = *rng.pick(Operator::for_type(ty));
    let value = match (ty, operator) {
        (_, op) if !op.needs_value() => String::new(),
        (PropType::Text, _) => {
            let (prefix, whole) = (rng_text_prefix(rng), rng.pick(TEXTS).to_string());
            if rng.chance(50) {
                prefix
            } else {
                whole
            }
        }
        (PropType::Number, _) => rng.pick(NUMBERS).to_string(),
        (PropType::Version, _) => rng.pick(VERSIONS).to_string(),
        (PropType::Date, Operator::Before | Operator::After) => {
            rng.pick(&["2026-10-20", "2026-11-01", "2026-11-10", "2026-11-18", "2026-12-01"]).to_string()
        }
        (PropType::Date, _) => rng.pick(&["0", "1", "5", "10", "30"]).to_string(),
        (PropType::Boolean, _) => String::new(),
    };
    Condition { property: property.into(), operator, value }
}

fn rng_text_prefix(rng: &mut Rng) -> String {
    rng.pick(&["A", "Ad", "G", "Go", "g", "@x", "i", "plus", "É"]).to_string()
}

async fn agree(store: &Store, seed: u64) {
    let mut rng = Rng(seed);
    let app_id = "0123456789abcdef01234567";
    store
        .insert_app(&AppRow { id: app_id.into(), name: "A".into(), identity_secret_enc: vec![0], created_at: 0 }, &[])
        .await
        .unwrap();
    let types: Vec<(String, &'static str)> = CUSTOM.iter().map(|(n, t)| (n.to_string(), t.as_str())).collect();
    let mut rows = Vec::new();
    for i in 0..150 {
        let u = random_user(&mut rng, app_id, i);
        rows.push(store.create_app_user(&u, &types).await.unwrap());
    }
    let catalog: HashMap<String, PropType> = CUSTOM.iter().map(|(n, t)| (n.to_string(), *t)).collect();
    let lookup = |name: &str| catalog.get(name).copied();
    for round in 0..400 {
        if round == 200 {
            change_some(store, &mut rng, app_id, &types, &mut rows).await;
        }
        let n = rng.below(4) as usize;
        let conditions: Vec<Condition> = (0..n).map(|_| random_condition(&mut rng)).collect();
        let checked = match conditions.iter().map(|c| c.check(lookup)).collect::<Result<Vec<_>, _>>() {
            Ok(c) => c,
            Err(e) => panic!("generator made an invalid condition {conditions:?}: {e:?}"),
        };
        // The clock moves too, so relative dates are exercised.
        let now = START_MS + rng.below(3 * DAY as u64) as i64;
        let in_memory: BTreeSet<String> = rows
            .iter()
            .filter(|r| matches_all(&checked, &RowProps { row: r, types: &catalog }, now))
            .map(|r| r.id.clone())
            .collect();
        let in_sql: BTreeSet<String> = store.audience_ids(app_id, &checked, now).await.unwrap().into_iter().collect();
        assert_eq!(
            in_memory,
            in_sql,
            "{} disagrees with memory (seed {seed}, round {round}) on {conditions:?}",
            store.backend_name()
        );
        assert_eq!(store.count_audience(app_id, &checked, now).await.unwrap(), in_sql.len() as i64);
        // The users list reads app_users itself, whatever the counts read.
        let q = UserListQuery {
            app_id,
            search: "",
            conditions: &checked,
            now,
            sort: SortKey::SignedUp,
            descending: true,
            after: None,
            limit: 500,
        };
        let listed: BTreeSet<String> = store.list_users(&q).await.unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(in_memory, listed, "the list disagrees (seed {seed}, round {round}) on {conditions:?}");
        assert_eq!(store.count_users(&q).await.unwrap(), in_sql.len() as i64);
    }
    assert!(builtin("firstName").is_some());
}

/// Halfway, a third of the users change (properties set, changed and
/// removed; platform; last seen) and a tenth are deleted, so the counts'
/// narrow table must follow every kind of write.
async fn change_some(
    store: &Store,
    rng: &mut Rng,
    app_id: &str,
    types: &[(String, &'static str)],
    rows: &mut Vec<murmur::storage::AppUserRow>,
) {
    let mut kept = Vec::new();
    for (i, row) in std::mem::take(rows).into_iter().enumerate() {
        if i % 10 == 3 {
            assert!(store.delete_app_user(app_id, &row.id).await.unwrap());
            continue;
        }
        if i % 3 != 0 {
            kept.push(row);
            continue;
        }
        let fresh = random_user(rng, app_id, i);
        let mut properties = fresh.properties.clone();
        for (name, _) in CUSTOM {
            if !properties.contains_key(*name) && rng.chance(50) {
                properties.insert(name.to_string(), json!(null));
            }
        }
        let changes = AppUserChanges {
            platform: Some(fresh.platform.clone()),
            properties,
            last_seen_at: rng.chance(50).then(|| START_MS - rng.below(10 * DAY as u64) as i64),
            ..Default::default()
        };
        kept.push(store.update_app_user(app_id, &row.id, &changes, types, 100, START_MS).await.unwrap());
    }
    *rows = kept;
}

#[tokio::test]
async fn sql_and_memory_agree_on_sqlite() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    agree(&db.store().await, 0x9E37_79B9_7F4A_7C15).await;
}

#[tokio::test]
async fn sql_and_memory_agree_on_postgres() {
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    let store = db.store().await;
    agree(&store, 0x9E37_79B9_7F4A_7C15).await;
    store.close().await;
}

#[tokio::test]
async fn values_are_bound_never_spliced() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let store = db.store().await;
    let evil = "x' OR 1=1 --";
    let c = Condition { property: "email".into(), operator: Operator::Is, value: evil.into() };
    let checked = c.check(|_| None).unwrap();
    let compiled = store.compile_conditions(&[checked], START_MS, 2);
    assert!(!compiled.sql.contains(evil), "{}", compiled.sql);
    assert_eq!(compiled.params.len(), 1);
}

/// A user with only an id and custom properties.
fn plain_user(app_id: &str, id: &str, properties: Map<String, serde_json::Value>) -> NewAppUser {
    NewAppUser {
        id: id.into(),
        app_id: app_id.into(),
        user_id: Some(format!("user-{id}")),
        given_name: None,
        surname: None,
        email: None,
        signed_up_at: START_MS - DAY,
        app_version: None,
        app_version_key: None,
        platform: None,
        properties,
        now: START_MS,
    }
}

/// The counts' narrow table (`user_filters`, migration 0018): the first 16
/// catalog names get a slot; a name past them is counted from `app_users`;
/// a value stored before its name was registered (an anonymous widget)
/// reaches the slot when the name is registered; and the counts really
/// read the narrow table.
async fn narrow_table_follows_the_catalog(store: &Store) {
    use murmur::storage::PendingUpdate;
    let app_id = "0123456789abcdef01234568";
    store
        .insert_app(&AppRow { id: app_id.into(), name: "B".into(), identity_secret_enc: vec![0], created_at: 0 }, &[])
        .await
        .unwrap();
    let names: Vec<String> = (0..18).map(|i| format!("n{i:02}")).collect();
    let types: Vec<(String, &'static str)> = names.iter().map(|n| (n.clone(), "text")).collect();
    let catalog = |n: &str| n.starts_with('n').then_some(PropType::Text).or((n == "late").then_some(PropType::Text));
    let is = |name: &str, value: &str| {
        Condition { property: name.into(), operator: Operator::Is, value: value.into() }.check(catalog).unwrap()
    };
    for i in 0..6 {
        let mut props = Map::new();
        for n in &names {
            props.insert(n.clone(), json!(if i % 2 == 0 { "even" } else { "odd" }));
        }
        store.create_app_user(&plain_user(app_id, &format!("u{i}"), props), &types).await.unwrap();
    }
    // n00..n15 have slots, n16 and n17 do not: both are counted right.
    for n in ["n00", "n15", "n16", "n17"] {
        assert_eq!(store.count_audience(app_id, &[is(n, "even")], START_MS).await.unwrap(), 3, "{n}");
    }
    // Counts read the narrow table: blank a slot there and only they change.
    let blank = "UPDATE user_filters SET p0 = NULL WHERE id = 'u0'";
    match store {
        Store::Sqlite(pool) => sqlx::query(blank).execute(pool).await.map(|_| ()),
        Store::Postgres(pool) => sqlx::query(blank).execute(pool).await.map(|_| ()),
    }
    .unwrap();
    assert_eq!(store.count_audience(app_id, &[is("n00", "even")], START_MS).await.unwrap(), 2);
    assert_eq!(store.count_audience(app_id, &[is("n16", "even")], START_MS).await.unwrap(), 3);

    // In an app with free slots, an anonymous widget stores `late` on u1
    // without registering it; the backend then registers it on u2.
    let app_id = "0123456789abcdef01234569";
    store
        .insert_app(&AppRow { id: app_id.into(), name: "C".into(), identity_secret_enc: vec![0], created_at: 0 }, &[])
        .await
        .unwrap();
    for i in 1..3 {
        store.create_app_user(&plain_user(app_id, &format!("c{i}"), Map::new()), &[]).await.unwrap();
    }
    let update = |user: &str, fix: bool| PendingUpdate {
        app_id: app_id.into(),
        user_ref: user.into(),
        changes: AppUserChanges {
            properties: [("late".to_string(), json!("yes"))].into_iter().collect(),
            ..Default::default()
        },
        types: vec![("late".into(), "text")],
        max_properties: 100,
        fix_types: fix,
        max_catalog: 100,
        now: START_MS,
    };
    for out in store.update_app_users_batch(&[update("c1", false)], vec![None]).await.unwrap() {
        out.unwrap();
    }
    assert!(!store.property_types(app_id).await.unwrap().contains_key("late"));
    for out in store.update_app_users_batch(&[update("c2", true)], vec![None]).await.unwrap() {
        out.unwrap();
    }
    let late = [is("late", "yes")];
    assert_eq!(store.audience_ids(app_id, &late, START_MS).await.unwrap(), vec!["c1".to_string(), "c2".to_string()]);

    // PostgreSQL: registering a new name holds the app's slot lock until
    // its commit; a write that names a registered property must not wait.
    if let Store::Postgres(pool) = store {
        let register = "INSERT INTO property_catalog (app_id, name, ty, created_at) \
                        VALUES ('0123456789abcdef01234568', $1, 'text', 0) ON CONFLICT (app_id, name) DO NOTHING";
        let mut holding = pool.begin().await.unwrap();
        sqlx::query(register).bind("fresh").execute(&mut *holding).await.unwrap();
        let known = sqlx::query(register).bind("n01").execute(pool);
        let waited = tokio::time::timeout(std::time::Duration::from_secs(10), known).await;
        assert!(waited.is_ok(), "a known name waited for another transaction's registration");
        holding.rollback().await.unwrap();
    }

    // Deleting an app (at the database: murmur has no such action) takes
    // its users' rows, by its number, and leaves the other app's.
    let delete = "DELETE FROM apps WHERE id = '0123456789abcdef01234568'";
    let count = "SELECT COUNT(*) FROM user_filters";
    let left: i64 = match store {
        Store::Sqlite(pool) => {
            sqlx::query(delete).execute(pool).await.unwrap();
            sqlx::query_scalar(count).fetch_one(pool).await.unwrap()
        }
        Store::Postgres(pool) => {
            sqlx::query(delete).execute(pool).await.unwrap();
            sqlx::query_scalar(count).fetch_one(pool).await.unwrap()
        }
    };
    assert_eq!(left, 2);
}

#[tokio::test]
async fn narrow_table_follows_the_catalog_on_sqlite() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    narrow_table_follows_the_catalog(&db.store().await).await;
}

#[tokio::test]
async fn narrow_table_follows_the_catalog_on_postgres() {
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    let store = db.store().await;
    narrow_table_follows_the_catalog(&store).await;
    store.close().await;
}
