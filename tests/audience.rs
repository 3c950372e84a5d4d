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
    storage::{audience::RowProps, AppRow, NewAppUser, Store},
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
    }
    assert!(builtin("firstName").is_some());
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
