//! Bulk loading for the benchmark command: a million users in large
//! multi-row statements, and the baseline's table of the same data in typed
//! columns. Benchmark-only, so it lives here and not in the product's
//! `Store`: an extension trait over it.

use murmur::storage::{Store, StoreResult};

/// Runs the same block against whichever pool the store holds.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            Store::Sqlite($pool) => $body,
            Store::Postgres($pool) => $body,
        }
    };
}

/// One seeded user: built-ins and three custom properties.
#[derive(Debug, Clone)]
pub struct SeedUser {
    pub id: String,
    pub user_id: String,
    pub signed_up_at: i64,
    pub app_version: String,
    pub app_version_key: String,
    pub plan: String,
    pub seats: i64,
    pub vip: bool,
}

#[allow(async_fn_in_trait)]
/// Which table a hand-written baseline query reads.
#[derive(Clone, Copy)]
pub enum HandWritten {
    /// `bench_users_typed`: the properties in typed columns of a narrow table.
    Typed,
    /// murmur's own `app_users`.
    OwnRows,
}

pub trait Seed {
    async fn seed_users(&self, app_id: &str, users: &[SeedUser], now: i64) -> StoreResult<()>;
    async fn create_bench_table(&self) -> StoreResult<()>;
    async fn bench_hand_count(
        &self,
        over: HandWritten,
        app_id: &str,
        signed_before: i64,
        plan: &str,
        version_key: &str,
    ) -> StoreResult<i64>;
    async fn analyze(&self) -> StoreResult<()>;
}

impl Seed for Store {
    /// Inserts users into `app_users` and the same rows into the typed
    /// baseline table `bench_users_typed`, in one transaction per call.
    async fn seed_users(&self, app_id: &str, users: &[SeedUser], now: i64) -> StoreResult<()> {
        let props: Vec<String> = users
            .iter()
            .map(|u| serde_json::json!({"plan": u.plan, "seats": u.seats, "vip": u.vip}).to_string())
            .collect();
        match self {
            Store::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                for (chunk, props) in users.chunks(500).zip(props.chunks(500)) {
                    let mut sql = String::from(
                        "INSERT INTO app_users (id, app_id, user_id, signed_up_at, app_version, app_version_key, \
                         properties, created_at, updated_at) VALUES ",
                    );
                    let mut typed = String::from(
                        "INSERT INTO bench_users_typed (id, app_id, signed_up_at, app_version_key, plan, seats, vip) VALUES ",
                    );
                    for i in 0..chunk.len() {
                        let b = i * 9;
                        sql.push_str(&format!(
                            "{}(${}, ${}, ${}, ${}, ${}, ${}, jsonb(${}), ${}, ${})",
                            if i > 0 { "," } else { "" },
                            b + 1,
                            b + 2,
                            b + 3,
                            b + 4,
                            b + 5,
                            b + 6,
                            b + 7,
                            b + 8,
                            b + 9
                        ));
                        let t = i * 7;
                        typed.push_str(&format!(
                            "{}(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                            if i > 0 { "," } else { "" },
                            t + 1,
                            t + 2,
                            t + 3,
                            t + 4,
                            t + 5,
                            t + 6,
                            t + 7
                        ));
                    }
                    let mut q = sqlx::query(&sql);
                    for (u, p) in chunk.iter().zip(props) {
                        q = q
                            .bind(&u.id)
                            .bind(app_id)
                            .bind(&u.user_id)
                            .bind(u.signed_up_at)
                            .bind(&u.app_version)
                            .bind(&u.app_version_key)
                            .bind(p)
                            .bind(now)
                            .bind(now);
                    }
                    q.execute(&mut *tx).await?;
                    let mut q = sqlx::query(&typed);
                    for u in chunk {
                        q = q
                            .bind(&u.id)
                            .bind(app_id)
                            .bind(u.signed_up_at)
                            .bind(&u.app_version_key)
                            .bind(&u.plan)
                            .bind(u.seats)
                            .bind(u.vip);
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
            Store::Postgres(pool) => {
                let col = |f: fn(&SeedUser) -> String| users.iter().map(f).collect::<Vec<String>>();
                let ids = col(|u| u.id.clone());
                let user_ids = col(|u| u.user_id.clone());
                let versions = col(|u| u.app_version.clone());
                let keys = col(|u| u.app_version_key.clone());
                let plans = col(|u| u.plan.clone());
                let signed: Vec<i64> = users.iter().map(|u| u.signed_up_at).collect();
                let seats: Vec<i64> = users.iter().map(|u| u.seats).collect();
                let vips: Vec<bool> = users.iter().map(|u| u.vip).collect();
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO app_users (id, app_id, user_id, signed_up_at, app_version, app_version_key, properties, created_at, updated_at) \
                     SELECT id, $1, user_id, signed, version, key, props::jsonb, $8, $8 \
                     FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[]) AS t(id, user_id, signed, version, key, props)",
                )
                .bind(app_id).bind(&ids).bind(&user_ids).bind(&signed).bind(&versions).bind(&keys).bind(&props).bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO bench_users_typed (id, app_id, signed_up_at, app_version_key, plan, seats, vip) \
                     SELECT id, $1, signed, key, plan, seats, vip \
                     FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bool[]) AS t(id, signed, key, plan, seats, vip)",
                )
                .bind(app_id).bind(&ids).bind(&signed).bind(&keys).bind(&plans).bind(&seats).bind(&vips)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// The baseline's table: the seeded users' filter columns, typed.
    async fn create_bench_table(&self) -> StoreResult<()> {
        let key = match self {
            Store::Sqlite(_) => "TEXT",
            Store::Postgres(_) => "TEXT COLLATE \"C\"",
        };
        let vip = match self {
            Store::Sqlite(_) => "INTEGER",
            Store::Postgres(_) => "BOOLEAN",
        };
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS bench_users_typed (id TEXT PRIMARY KEY, app_id TEXT NOT NULL, \
             signed_up_at BIGINT NOT NULL, app_version_key {key}, plan TEXT, seats BIGINT, vip {vip})"
        );
        with_pool!(self, pool => {
            sqlx::query(&sql).execute(pool).await?;
            sqlx::query("CREATE INDEX IF NOT EXISTS bench_users_typed_app ON bench_users_typed (app_id, signed_up_at)").execute(pool).await?;
        });
        Ok(())
    }

    /// A hand-written baseline: the same three conditions written by hand,
    /// over the typed narrow table, or over murmur's own `app_users` rows
    /// (the custom property read from the JSON column by a literal path), to
    /// tell the row's width from what compiling the conditions costs.
    async fn bench_hand_count(
        &self,
        over: HandWritten,
        app_id: &str,
        signed_before: i64,
        plan: &str,
        version_key_above: &str,
    ) -> StoreResult<i64> {
        let sql = match (over, self) {
            (HandWritten::Typed, Store::Sqlite(_)) => "SELECT COUNT(*) FROM bench_users_typed WHERE app_id = $1 AND signed_up_at < $2 AND plan = $3 AND app_version_key > $4",
            (HandWritten::Typed, Store::Postgres(_)) => "SELECT COUNT(*) FROM bench_users_typed WHERE app_id = $1 AND signed_up_at < $2 AND plan = $3 AND app_version_key > $4::text",
            (HandWritten::OwnRows, Store::Sqlite(_)) => "SELECT COUNT(*) FROM app_users WHERE app_id = $1 AND signed_up_at < $2 AND properties ->> '$.plan' = $3 AND app_version_key > $4",
            (HandWritten::OwnRows, Store::Postgres(_)) => "SELECT COUNT(*) FROM app_users WHERE app_id = $1 AND signed_up_at < $2 AND properties ->> 'plan' = $3 AND app_version_key > $4::text",
        };
        Ok(
            with_pool!(self, pool => sqlx::query_scalar(sql).bind(app_id).bind(signed_before).bind(plan).bind(version_key_above).fetch_one(pool).await?),
        )
    }

    /// Refreshes planner statistics after a bulk load.
    async fn analyze(&self) -> StoreResult<()> {
        with_pool!(self, pool => { sqlx::query("ANALYZE").execute(pool).await?; });
        Ok(())
    }
}
