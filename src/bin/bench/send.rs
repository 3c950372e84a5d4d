//! A manual message to a 1,000,000-user segment: the time until every
//! recipient is fixed and queued (one pending delivery per user, inserted
//! from SQL in chunks, each chunk one durable transaction), beside the
//! application-side way doing the same durable work: read the audience's
//! ids, then insert the deliveries in multi-row batches, one transaction
//! per 5,000 rows.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use murmur::{
    engine::Engine,
    server::SystemClock,
    storage::{manual::ManualRow, Store},
};

use super::APP_ID;

fn message(id: &str, now: i64) -> ManualRow {
    ManualRow {
        id: id.into(),
        app_id: APP_ID.into(),
        title: "Everyone".into(),
        sender_id: None,
        sender_name: "The team".into(),
        kind: "chat".into(),
        body: "Hello {{ firstName || there }}".into(),
        audience: r#"{"type":"segment","conditions":[]}"#.into(),
        state: "scheduled".into(),
        send_at: Some(now),
        recipients: None,
        created_by: None,
        created_at: now,
        updated_at: now,
        stopped_at: None,
        push: false,
    }
}

async fn count(store: &Store, sql: &str) -> i64 {
    match store {
        Store::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        Store::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
    }
}

/// The baseline: ids read by the application, deliveries written back in
/// batches of 500 rows, a transaction per 5,000.
async fn baseline(store: &Store, message_id: &str, now: i64) -> usize {
    let ids: Vec<String> = match store {
        Store::Sqlite(p) => sqlx::query_scalar("SELECT id FROM app_users WHERE app_id = $1 ORDER BY id")
            .bind(APP_ID)
            .fetch_all(p)
            .await
            .unwrap(),
        Store::Postgres(p) => sqlx::query_scalar("SELECT id FROM app_users WHERE app_id = $1 ORDER BY id")
            .bind(APP_ID)
            .fetch_all(p)
            .await
            .unwrap(),
    };
    for tx_ids in ids.chunks(5_000) {
        macro_rules! write {
            ($pool:expr) => {{
                let mut tx = $pool.begin().await.unwrap();
                for rows in tx_ids.chunks(500) {
                    let values = (0..rows.len())
                        .map(|i| format!("(${}, $1, $2, ${}, 'in_app', 'pending', $3)", 2 * i + 4, 2 * i + 5))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sql = format!(
                        "INSERT INTO message_deliveries (id, app_id, message_id, app_user_id, channel, state, created_at) \
                         VALUES {values} ON CONFLICT (message_id, app_user_id) DO NOTHING"
                    );
                    let mut q = sqlx::query(&sql).bind(APP_ID).bind(message_id).bind(now);
                    for u in rows {
                        q = q.bind(format!("m{}", murmur::storage::new_id())).bind(u);
                    }
                    q.execute(&mut *tx).await.unwrap();
                }
                tx.commit().await.unwrap();
            }};
        }
        match store {
            Store::Sqlite(p) => write!(p),
            Store::Postgres(p) => write!(p),
        }
    }
    ids.len()
}

pub async fn send(store: &Store, users: usize, now: i64) {
    let engine = Engine::start(store.clone(), Arc::new(SystemClock), true, Duration::ZERO).await.unwrap();
    let mut murmur_times = vec![];
    let mut base_times = vec![];
    for round in 0..3 {
        let id = format!("5e{round:022x}");
        store.insert_manual(&message(&id, now)).await.unwrap();
        let t = Instant::now();
        let finished = engine.run_sends().await.unwrap();
        murmur_times.push(t.elapsed());
        assert_eq!(finished, 1);
        let n = count(store, &format!("SELECT COUNT(*) FROM message_deliveries WHERE message_id = '{id}'")).await;
        assert_eq!(n as usize, users, "every user is a recipient");

        let base_id = format!("ba{round:022x}");
        store.insert_manual(&ManualRow { state: "draft".into(), ..message(&base_id, now) }).await.unwrap();
        let t = Instant::now();
        let n = baseline(store, &base_id, now).await;
        base_times.push(t.elapsed());
        assert_eq!(n, users);
        // Both leave the same rows behind: clear them for the next round.
        for m in [&id, &base_id] {
            match store {
                Store::Sqlite(p) => sqlx::query("DELETE FROM manual_messages WHERE id = $1")
                    .bind(m)
                    .execute(p)
                    .await
                    .map(|_| ())
                    .unwrap(),
                Store::Postgres(p) => sqlx::query("DELETE FROM manual_messages WHERE id = $1")
                    .bind(m)
                    .execute(p)
                    .await
                    .map(|_| ())
                    .unwrap(),
            }
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (m, b) = (median(&mut murmur_times), median(&mut base_times));
    println!(
        "| manual message to {users} users: recipients fixed and queued (median of 3) | {:.2} s ({:.0} deliveries/s) | {:.2} s | {:.1}× faster; target ≤ 2 s |",
        m.as_secs_f64(),
        users as f64 / m.as_secs_f64(),
        b.as_secs_f64(),
        b.as_secs_f64() / m.as_secs_f64()
    );
}
