//! The users page's catalog counts (issue 14: ≤ 100 ms at 1M users / 10M
//! events). The seeded users (1,000,000 by default) get 17 more custom
//! properties beside plan / seats / vip (user by user a pseudo-random
//! number of them, 20 names in all), and 0 to 20 events each (10 on
//! average: 10M at the default) over 20 event names, some much more common
//! than others. Both catalogs list their 20 names, as the API would have
//! registered them. Seeded with `INSERT … SELECT` over `app_users`, a
//! chunk of users per statement.
//!
//! Measures the dashboard's read (the three `Store` calls the server
//! function makes: property counts, event counts, when they were counted;
//! and the server function itself, with its membership check) p50 / p99 /
//! max, the background recount (`Store::recount_catalog`) a few times, and
//! as the baseline the way the counts were read before they were stored:
//! one `COUNT` per property name over the users and one per event name
//! over the events.

use std::time::{Duration, Instant};

use murmur::{
    server::{users::catalog, AppState},
    storage::{Store, TeammateRow},
};

use super::{
    inbox::{ms, percentile, timed},
    APP_ID, DAY,
};

const READER: &str = "0000000000000000000000c1";
/// Users per seeding statement (about 10 events each).
const CHUNK: usize = 100_000;
/// Event names (`event-0` … `event-19`).
const EVENT_NAMES: i64 = 20;
/// The custom properties added to the seeded plan / seats / vip.
const EXTRA: [(&str, &str); 17] = [
    ("company", "text"),
    ("role", "text"),
    ("country", "text"),
    ("language", "text"),
    ("team_size", "number"),
    ("newsletter", "boolean"),
    ("orders", "number"),
    ("city", "text"),
    ("referrer", "text"),
    ("last_order_total", "number"),
    ("beta", "boolean"),
    ("theme", "text"),
    ("timezone", "text"),
    ("industry", "text"),
    ("score", "number"),
    ("nps", "number"),
    ("trial", "boolean"),
];

/// A user's pseudo-random number in [0, 1000003), from the seeded sign-up
/// time (`now` - a random offset; `now` is $2).
const A: &str = "(($2 - signed_up_at) % 1000003)";

/// Runs `sql` with $1 = the app, $2 = now and the extra text binds.
async fn exec(store: &Store, sql: &str, now: i64, binds: &[String]) -> u64 {
    macro_rules! run {
        ($pool:expr) => {{
            let mut q = sqlx::query(sql).bind(APP_ID).bind(now);
            for b in binds {
                q = q.bind(b);
            }
            q.execute($pool).await.unwrap().rows_affected()
        }};
    }
    match store {
        Store::Sqlite(p) => run!(p),
        Store::Postgres(p) => run!(p),
    }
}

/// The patch adding user by user the first m (0 to 17) extra properties.
fn properties_update(store: &Store) -> String {
    let m = format!("(({A} * 31 + 17) % 18)");
    let pairs = EXTRA.iter().enumerate().map(|(j, (name, ty))| {
        let present = format!("{m} > {j}");
        let value = match (ty, store) {
            (&"text", _) => format!("'{name}-' || (({A} + {j}) % 100)"),
            (&"number", _) => format!("(({A} / {}) % 1000)", j + 1),
            (_, Store::Sqlite(_)) => format!("json(CASE WHEN ({A} + {j}) % 2 = 0 THEN 'true' ELSE 'false' END)"),
            (_, Store::Postgres(_)) => format!("(({A} + {j}) % 2 = 0)"),
        };
        match store {
            // An absent one is JSON null in the patch, which adds nothing.
            Store::Sqlite(_) if *ty == "boolean" => {
                format!("'{name}', CASE WHEN {present} THEN {value} ELSE json('null') END")
            }
            _ => format!("'{name}', CASE WHEN {present} THEN {value} END"),
        }
    });
    let object = pairs.collect::<Vec<_>>().join(", ");
    match store {
        Store::Sqlite(_) => format!(
            "UPDATE app_users SET properties = jsonb_patch(properties, json_object({object})) WHERE app_id = $1"
        ),
        Store::Postgres(_) => format!(
            "UPDATE app_users SET properties = properties || jsonb_strip_nulls(jsonb_build_object({object})) \
             WHERE app_id = $1"
        ),
    }
}

/// Up to 20 events per user of the chunk `$3 <= id < $4`: slot k is kept
/// for half the users, its name skewed towards the low numbers, its time
/// within the last 30 days.
fn events_insert() -> String {
    let slots = (0..20).map(|k| format!("({k})")).collect::<Vec<_>>().join(", ");
    let h = format!("(({A} * (2 * k.column1 + 7919) + k.column1 * 104729) % 1000003)");
    format!(
        "INSERT INTO events (app_id, app_user_id, name, created_at) \
         SELECT app_id, id, 'event-' || ((({h} / 2) % 1000) * (({h} / 2) % 1000) / 50000), \
         $2 - ({h} * 2593) % {} \
         FROM app_users u CROSS JOIN (VALUES {slots}) k \
         WHERE u.app_id = $1 AND u.id >= $3 AND u.id < $4 AND {h} % 2 = 0",
        30 * DAY
    )
}

async fn seed(store: &Store, users: usize, now: i64) -> u64 {
    let t = TeammateRow {
        id: READER.into(),
        name: "Catalog Reader".into(),
        email: format!("{READER}@bench.example"),
        password_hash: "-".into(),
        is_owner: false,
        created_at: now,
    };
    store.insert_teammate(&t, Some(APP_ID)).await.unwrap();
    // The catalogs, as the API registers names on first use.
    let props: Vec<String> = [("plan", "text"), ("seats", "number"), ("vip", "boolean")]
        .iter()
        .chain(EXTRA.iter())
        .map(|(name, ty)| format!("($1, '{name}', '{ty}', $2)"))
        .collect();
    let sql = format!(
        "INSERT INTO property_catalog (app_id, name, ty, created_at) VALUES {} ON CONFLICT DO NOTHING",
        props.join(", ")
    );
    exec(store, &sql, now, &[]).await;
    let events: Vec<String> = (0..EVENT_NAMES).map(|i| format!("($1, 'event-{i}', $2)")).collect();
    let sql = format!(
        "INSERT INTO event_catalog (app_id, name, created_at) VALUES {} ON CONFLICT DO NOTHING",
        events.join(", ")
    );
    exec(store, &sql, now, &[]).await;
    let t = Instant::now();
    let n = exec(store, &properties_update(store), now, &[]).await;
    eprintln!("  {n} users given their extra properties in {:.1} s", t.elapsed().as_secs_f64());
    let insert = events_insert();
    let mut total = 0;
    for from in (0..users).step_by(CHUNK) {
        let t = Instant::now();
        let to = (from + CHUNK).min(users);
        let n = exec(store, &insert, now, &[format!("{from:024x}"), format!("{to:024x}")]).await;
        total += n;
        eprintln!("  {n} events for users {from}..{to} in {:.1} s", t.elapsed().as_secs_f64());
    }
    let t = Instant::now();
    match store {
        Store::Sqlite(p) => {
            sqlx::query("ANALYZE").execute(p).await.unwrap();
        }
        // What autovacuum would have done by then: the rewritten users'
        // old rows gone, the events' pages all-visible (index-only scans).
        Store::Postgres(p) => {
            sqlx::raw_sql("VACUUM (ANALYZE) app_users, events").execute(p).await.unwrap();
        }
    }
    eprintln!("  analyzed in {:.1} s", t.elapsed().as_secs_f64());
    total
}

/// The dashboard's read: what `server::users::catalog` asks the store.
async fn read(store: &Store) -> usize {
    let props = store.property_catalog_counts(APP_ID).await.unwrap();
    let events = store.event_catalog_counts(APP_ID).await.unwrap();
    let at = store.catalog_counted_at(APP_ID).await.unwrap();
    assert!(at.is_some(), "counted");
    props.len() + events.len()
}

/// One `COUNT` per name, as the catalog was read before its counts were
/// stored (the correlated counts of the earlier `property_catalog_counts`
/// and `event_catalog_counts`, one statement per name here).
async fn count_per_name(store: &Store, names: &[String], sql: &str) -> (Duration, Vec<i64>) {
    let t = Instant::now();
    let mut counts = Vec::with_capacity(names.len());
    for name in names {
        let n: i64 = match store {
            Store::Sqlite(p) => sqlx::query_scalar(sql).bind(APP_ID).bind(name).fetch_one(p).await.unwrap(),
            Store::Postgres(p) => sqlx::query_scalar(sql).bind(APP_ID).bind(name).fetch_one(p).await.unwrap(),
        };
        counts.push(n);
    }
    (t.elapsed(), counts)
}

/// The recount's two grouped passes alone (its SQL, copied), to see where its time goes.
async fn passes(store: &Store) -> (Duration, Duration) {
    let props = match store {
        Store::Sqlite(_) => {
            "SELECT j.key, COUNT(*) FROM app_users u, json_each(u.properties) j WHERE u.app_id = $1 GROUP BY j.key"
        }
        Store::Postgres(_) => {
            "SELECT k, COUNT(*) FROM app_users u, jsonb_object_keys(u.properties) k WHERE u.app_id = $1 GROUP BY k"
        }
    };
    let events = "SELECT e.name, COUNT(*) FROM app_users u JOIN event_users e ON e.app_user_id = u.id \
                  WHERE u.app_id = $1 GROUP BY e.name";
    let mut out = [Duration::ZERO; 2];
    for (i, sql) in [props, events].into_iter().enumerate() {
        let t = Instant::now();
        match store {
            Store::Sqlite(p) => sqlx::query(sql).bind(APP_ID).fetch_all(p).await.unwrap().len(),
            Store::Postgres(p) => sqlx::query(sql).bind(APP_ID).fetch_all(p).await.unwrap().len(),
        };
        out[i] = t.elapsed();
    }
    (out[0], out[1])
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

pub async fn catalog_part(state: &AppState, users: usize, now: i64, runs: usize, recounts: usize) {
    let store = &state.store;
    let t = Instant::now();
    let events = seed(store, users, now).await;
    let seeded = t.elapsed();
    eprintln!("  seeded the catalog part ({events} events) in {:.1} s", seeded.as_secs_f64());
    // The seeded events folded into who did each event, as the
    // housekeeping does with new events (the recounts then fold nothing).
    let t = Instant::now();
    store.fold_event_users(APP_ID).await.unwrap();
    let folded = t.elapsed();

    // The background recount, a few times (the first one counts a catalog
    // never counted, as the first page view or the housekeeping would).
    let mut recount = Vec::with_capacity(recounts);
    for _ in 0..recounts {
        let t = Instant::now();
        store.recount_catalog(APP_ID, now).await.unwrap();
        recount.push(t.elapsed());
    }
    recount.sort();
    let (props_pass, events_pass) = passes(store).await;

    // The dashboard's read, from the stored counts.
    let props = store.property_catalog_counts(APP_ID).await.unwrap();
    let evs = store.event_catalog_counts(APP_ID).await.unwrap();
    let reads = timed(runs, || read(store)).await;
    let me = store.teammate_by_id(READER).await.unwrap().expect("the catalog reader");
    let served = catalog(state, &me, APP_ID).await.unwrap();
    assert_eq!(served.properties.len(), props.len());
    let service = timed(runs, || async { catalog(state, &me, APP_ID).await.unwrap() }).await;

    // The baseline: one count per name, once.
    let has = match store {
        Store::Sqlite(_) => "json_extract(u.properties, '$.\"' || $2 || '\"') IS NOT NULL",
        Store::Postgres(_) => "jsonb_exists(u.properties, $2)",
    };
    let prop_names: Vec<String> = props.iter().map(|p| p.0.clone()).collect();
    let event_names: Vec<String> = evs.iter().map(|e| e.0.clone()).collect();
    let (props_base, prop_counts) =
        count_per_name(store, &prop_names, &format!("SELECT COUNT(*) FROM app_users u WHERE u.app_id = $1 AND {has}"))
            .await;
    let (events_base, event_counts) = count_per_name(
        store,
        &event_names,
        "SELECT COUNT(*) FROM app_users u JOIN event_users e ON e.app_user_id = u.id WHERE u.app_id = $1 AND e.name = $2",
    )
    .await;
    let baseline = props_base + events_base;
    // Both ways count the same users.
    let stored_props: Vec<i64> = props.iter().map(|p| p.2.unwrap_or(-1)).collect();
    let stored_events: Vec<i64> = evs.iter().map(|e| e.1.unwrap_or(-1)).collect();
    if stored_props != prop_counts || stored_events != event_counts {
        eprintln!("  MISMATCH: stored {props:?} {evs:?}\n  counted {prop_counts:?} {event_counts:?}");
    }
    eprintln!("  property counts: {props:?}\n  event counts: {evs:?}");

    let read_p50 = percentile(&reads, 0.5);
    println!(
        "| catalog part seeded: {} property names, {} event names, {users} users, {events} events | {} | | |",
        props.len(),
        evs.len(),
        secs(seeded)
    );
    println!(
        "| catalog read (`property_catalog_counts` + `event_catalog_counts` + `catalog_counted_at`) | p50 {} | p99 {}, max {} (baseline, one COUNT per name, once: {}) | {runs} runs; target ≤ 100 ms; ~{:.0}× faster at p50 |",
        ms(read_p50),
        ms(percentile(&reads, 0.99)),
        ms(*reads.last().unwrap()),
        ms(baseline),
        baseline.as_secs_f64() / read_p50.as_secs_f64()
    );
    println!(
        "| catalog read: the server function's work (`server::users::catalog`) | p50 {} | p99 {}, max {} | {runs} runs; target ≤ 100 ms |",
        ms(percentile(&service, 0.5)),
        ms(percentile(&service, 0.99)),
        ms(*service.last().unwrap()),
    );
    println!(
        "| catalog recount (`Store::recount_catalog`) | p50 {} | max {} (its passes alone: properties {}, events {}) | {recounts} runs; in the background, every {} min |",
        secs(recount[recount.len() / 2]),
        secs(*recount.last().unwrap()),
        secs(props_pass),
        secs(events_pass),
        murmur::storage::CATALOG_RECOUNT_MS / 60_000
    );
    println!(
        "| the seeded events folded into who did each event (`Store::fold_event_users`), once | {} | {events} events, {:.1} µs/event | what the housekeeping does with new events every {} s |",
        secs(folded),
        folded.as_secs_f64() * 1e6 / events.max(1) as f64,
        murmur::storage::FOLD_EVERY_MS / 1000
    );
    println!(
        "| baseline: one COUNT per name ({} properties, {} events), once | {} | properties {}, events {} | what each page view cost before the counts were stored |",
        prop_names.len(),
        event_names.len(),
        secs(baseline),
        secs(props_base),
        secs(events_base),
    );
}
