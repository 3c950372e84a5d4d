//! The inbox's first page with many conversations: the server function's
//! whole work (`server::conversations::list`: the membership check, the
//! page, the open counts and the app's teammates), per filter, p50 and p99
//! over many calls, beside the baseline of the same page's rows read by one
//! hand-written query on the list's index (no counts, no membership check,
//! no teammates).
//!
//! Seeds one conversation (with one message) for each of the first
//! `conversations` users: four in five open, a third assigned to the
//! teammate who reads the inbox, a third to another, the rest unassigned,
//! last activity spread over 90 days.

use std::time::{Duration, Instant};

use murmur::{
    server::{
        conversations::{list, ListRequest, INBOX_PAGE},
        AppState,
    },
    storage::{Store, TeammateRow},
};

use super::{seed::Seed, Rng, APP_ID, DAY};

const ME: &str = "0000000000000000000000e1";
const OTHER: &str = "0000000000000000000000e2";
/// Rows per INSERT statement while seeding.
const ROWS: usize = 400;

async fn exec(store: &Store, sql: &str, binds: &[String]) {
    macro_rules! run {
        ($pool:expr) => {{
            let mut q = sqlx::query(sql);
            for b in binds {
                q = q.bind(b);
            }
            q.execute($pool).await.unwrap();
        }};
    }
    match store {
        Store::Sqlite(p) => run!(p),
        Store::Postgres(p) => run!(p),
    }
}

async fn seed(store: &Store, conversations: usize, now: i64) {
    for (id, name) in [(ME, "Inbox Reader"), (OTHER, "Other Teammate")] {
        let t = TeammateRow {
            id: id.into(),
            name: name.into(),
            email: format!("{id}@bench.example"),
            password_hash: "-".into(),
            is_owner: false,
            created_at: now,
        };
        store.insert_teammate(&t, Some(APP_ID)).await.unwrap();
    }
    let mut rng = Rng(0x1B0C5);
    let ids: Vec<usize> = (0..conversations).collect();
    for chunk in ids.chunks(ROWS) {
        let mut conv_values = Vec::with_capacity(chunk.len());
        let mut conv_binds = Vec::with_capacity(chunk.len() * 3);
        let mut msg_binds = Vec::with_capacity(chunk.len() * 3);
        let mut ints = Vec::with_capacity(chunk.len());
        for (k, &i) in chunk.iter().enumerate() {
            let r = rng.next();
            let state = if r % 5 == 0 { "closed" } else { "open" };
            let assignee = match (r >> 8) % 3 {
                0 => format!("'{ME}'"),
                1 => format!("'{OTHER}'"),
                _ => "NULL".into(),
            };
            let at = now - ((r >> 16) % (90 * DAY as u64)) as i64;
            let unread = (r >> 60) % 3;
            let text = format!("Question number {i} about my order");
            let (c, u, t) = (3 * k + 1, 3 * k + 2, 3 * k + 3);
            conv_values
                .push(format!("(${c}, '{APP_ID}', ${u}, '{state}', {assignee}, 'user', {at}, ${t}, {unread}, {at})"));
            conv_binds.extend([format!("c{i:023x}"), format!("{i:024x}"), text.clone()]);
            msg_binds.extend([format!("x{i:023x}"), format!("{i:024x}"), text]);
            ints.push(at);
        }
        exec(
            store,
            &format!(
                "INSERT INTO conversations (id, app_id, app_user_id, state, assignee_id, started_by, \
                 last_activity_at, last_text, unread_team, created_at) VALUES {}",
                conv_values.join(", ")
            ),
            &conv_binds,
        )
        .await;
        // Messages: (id, app_id, app_user_id, role, text, created_at, conversation_id);
        // binds per row: $3k+1 = id, $3k+2 = user, $3k+3 = text; the conversation is the id with a `c`.
        let msg_sql = format!(
            "INSERT INTO messages (id, app_id, app_user_id, role, text, created_at, conversation_id) VALUES {}",
            (0..chunk.len())
                .map(|k| {
                    let (m, u, t) = (3 * k + 1, 3 * k + 2, 3 * k + 3);
                    format!("(${m}, '{APP_ID}', ${u}, 'appUser', ${t}, {}, 'c' || substr(${m}, 2))", ints[k])
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
        exec(store, &msg_sql, &msg_binds).await;
    }
    store.analyze().await.unwrap();
}

/// The `q` quantile of sorted durations.
pub(super) fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

pub(super) fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Timed runs (after 20 to warm up): sorted durations.
pub(super) async fn timed<F, Fut, T>(runs: usize, mut f: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    for _ in 0..20 {
        f().await;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f().await;
        times.push(t.elapsed());
    }
    times.sort();
    times
}

/// The baseline: the first page's rows of the open list, one query on the list's index.
async fn baseline_page(store: &Store) -> usize {
    let sql = "SELECT c.id, c.last_text, c.last_activity_at, u.given_name, u.user_id FROM conversations c \
               JOIN app_users u ON u.id = c.app_user_id WHERE c.app_id = $1 AND c.state = 'open' \
               ORDER BY c.last_activity_at DESC, c.id DESC LIMIT $2";
    macro_rules! run {
        ($pool:expr) => {
            sqlx::query(sql).bind(APP_ID).bind(INBOX_PAGE + 1).fetch_all($pool).await.unwrap().len()
        };
    }
    match store {
        Store::Sqlite(p) => run!(p),
        Store::Postgres(p) => run!(p),
    }
}

pub async fn inbox(state: &AppState, conversations: usize, now: i64, runs: usize) {
    let store = &state.store;
    let t = Instant::now();
    seed(store, conversations, now).await;
    eprintln!("  seeded {conversations} conversations in {:.1} s", t.elapsed().as_secs_f64());
    let me = store.teammate_by_id(ME).await.unwrap().expect("the inbox reader");
    let base = timed(runs, || baseline_page(store)).await;
    println!(
        "| inbox first page, {conversations} conversations: baseline, one hand-written query for the page's rows | p50 {} | p99 {} | {runs} runs |",
        ms(percentile(&base, 0.5)),
        ms(percentile(&base, 0.99)),
    );
    for (label, st, filter, search) in [
        ("open, all", "open", "all", ""),
        ("open, mine", "open", "mine", ""),
        ("open, unassigned", "open", "unassigned", ""),
        ("closed, all", "closed", "all", ""),
        ("open, all, search \"number 4242\"", "open", "all", "number 4242"),
    ] {
        let runs = if search.is_empty() { runs } else { runs.min(50) };
        let page =
            list(state, &me, ListRequest { app_id: APP_ID, state: st, filter, search, after: "" }).await.unwrap();
        assert!(search.is_empty() == (page.conversations.len() == INBOX_PAGE as usize), "{label}: a full page");
        let times = timed(runs, || async {
            list(state, &me, ListRequest { app_id: APP_ID, state: st, filter, search, after: "" }).await.unwrap()
        })
        .await;
        println!(
            "| inbox first page ({label}), {conversations} conversations: the server function's work | p50 {} | p99 {} (baseline p99 {}) | {runs} runs; target ≤ 50 ms |",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            ms(percentile(&base, 0.99)),
        );
    }
}
