//! Storage: every SQL query of murmur lives in this folder. One `Store` over
//! two backends, chosen once at start from `DATABASE_URL`. Queries whose SQL
//! is the same on both are written once and run through `with_pool!`;
//! migrations are per backend (`migrations/sqlite`, `migrations/postgres`).

mod apps;
pub mod audience;
pub mod audit;
pub mod backlog;
pub mod conversations;
pub mod email;
mod explain;
pub mod manual;
mod office;
pub mod push;
pub mod recall;
pub mod stats;
mod teammates;
pub mod timeline;
mod users;
mod whispers;
mod widget;

pub use apps::{ApiKeyRow, AppRow, ServerOnlyNames};
pub use audit::{AuditEntry, AuditRow};
pub use conversations::{AssigneeFilter, ConversationRow, ConversationTarget, InboxQuery, InboxRow, Joining};
pub use explain::EvaluationRecord;
pub use teammates::{TeammateRow, ThrottleAllowance, ThrottleRow};
pub(crate) use users::lock as lock_user_ids;
pub use users::{
    AppUserChanges, AppUserRow, CatalogEntry, DeliveryPlan, EventRow, MessageRow, NewAppUser, OfficeReply,
    PendingEvent, PendingMessage, PendingUpdate, Planned, PostedMessage, Properties, Received, Tracked, UpdatePlan,
    UserIds, UserWriteError, CATALOG_RECOUNT_MS, FOLD_CHUNK, FOLD_EVERY_MS,
};
pub use whispers::{StatusChange, WhisperRow, WhisperStatsRow};
pub use widget::{DeliveryRow, NewDelivery, Reaction, WidgetApp, WidgetUser};

use std::{str::FromStr, time::Duration};

use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    PgPool, SqlitePool,
};

/// The database murmur talks to.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same block against whichever pool the store holds. The block is
/// compiled once per backend, so a query that does not suit both fails to
/// compile rather than at run time.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::storage::Store::Sqlite($pool) => $body,
            $crate::storage::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write (duplicate email, second owner…).
    #[error("unique constraint violated")]
    Duplicate,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// PostgreSQL refused text holding U+0000 (SQLSTATE 22021,
    /// `character_not_in_repertoire`): the input's fault, not the server's.
    pub fn refused_nul(&self) -> bool {
        matches!(self, StoreError::Db(sqlx::Error::Database(e)) if e.code().as_deref() == Some("22021"))
    }

    /// A foreign key failed (SQLSTATE 23503): on PostgreSQL, a row read in
    /// the same statement was deleted by a transaction that committed meanwhile.
    pub fn foreign_key_failed(&self) -> bool {
        matches!(self, StoreError::Db(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23503"))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A new row id: 24 lowercase hex characters (96 random bits).
pub fn new_id() -> String {
    let mut b = [0u8; 12];
    // The OS random source failing is unrecoverable for a server that must
    // issue unguessable ids.
    getrandom::getrandom(&mut b).expect("the operating system's random source is unavailable");
    hex::encode(b)
}

/// Maps unique violations (reported alike by both drivers) to `Duplicate`.
pub(crate) fn classify(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Duplicate,
        _ => StoreError::Db(e),
    }
}

/// SQLite: the WAL's length (in pages, 64 MiB) past which the writer
/// checkpoints it itself: what the checkpoints on a connection of their
/// own (`engine::checkpoints`) have not copied yet, after which the WAL
/// starts again from its beginning.
pub const WRITER_WAL_PAGES: u32 = 16_384;

/// SQLite: how much of the database file the writer's connection reads
/// through a memory map (2 GiB, SQLite's largest by default) instead of a
/// read call per page into its 2 MB page cache. With users spread over a
/// large table, every batch reads thousands of pages not in that cache:
/// through the map, the writer's cold ingest went from 30,646 to 39,522
/// events/s, means of three same-run pairs (BENCHMARKS.md). Writes still
/// go through the WAL.
pub const WRITER_MMAP_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// A pool of one SQLite connection, held for the server's life, never
/// pinged (an embedded file cannot drop a connection).
async fn one_held(opts: SqliteConnectOptions, wait: Duration) -> StoreResult<sqlx::SqlitePool> {
    Ok(SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(false)
        .acquire_timeout(wait)
        .connect_with(opts)
        .await?)
}

/// Which backend a `DATABASE_URL` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    Sqlite(String),
    Postgres(String),
}

impl DbUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url).map_err(|e| format!("not a valid SQLite URL: {e}"))?;
            Ok(DbUrl::Sqlite(url.to_string()))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            PgConnectOptions::from_str(url).map_err(|e| format!("not a valid PostgreSQL URL: {e}"))?;
            Ok(DbUrl::Postgres(url.to_string()))
        } else {
            Err("expected a URL starting with sqlite:, postgres:// or postgresql://".into())
        }
    }
}

impl Store {
    /// Opens a pool. SQLite gets WAL, `synchronous=FULL` (a committed write
    /// survives power loss), foreign keys and a busy timeout.
    pub async fn connect(url: &DbUrl) -> StoreResult<Store> {
        match url {
            DbUrl::Sqlite(url) => {
                let opts = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5));
                // An embedded file cannot drop a connection: no ping on
                // every acquire (each would be a round trip to the
                // connection's worker thread).
                let pool = SqlitePoolOptions::new()
                    .max_connections(8)
                    .test_before_acquire(false)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(opts)
                    .await?;
                Ok(Store::Sqlite(pool))
            }
            DbUrl::Postgres(url) => {
                let opts = PgConnectOptions::from_str(url)?;
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(opts)
                    .await?;
                Ok(Store::Postgres(pool))
            }
        }
    }

    /// The store the delivery path's writer uses. SQLite: a pool of one
    /// connection held for the server's life, so every hot-path write goes
    /// through the same connection (warm page cache, cached prepared
    /// statements, never waiting for another writer's lock), reading the
    /// file through a memory map (`WRITER_MMAP_BYTES`). PostgreSQL:
    /// the shared pool.
    pub async fn for_writer(&self) -> StoreResult<Store> {
        match self {
            Store::Sqlite(pool) => {
                // The WAL is checkpointed by its own connection
                // (`engine::checkpoints`): the writer only past
                // `WRITER_WAL_PAGES`.
                let opts = (*pool.connect_options())
                    .clone()
                    .pragma("wal_autocheckpoint", WRITER_WAL_PAGES.to_string())
                    .pragma("mmap_size", WRITER_MMAP_BYTES.to_string());
                Ok(Store::Sqlite(one_held(opts, Duration::from_secs(30)).await?))
            }
            Store::Postgres(_) => Ok(self.clone()),
        }
    }

    /// The store the writers use on their own runtime (`engine::writer`),
    /// opened there. SQLite: the writer's held connection (`for_writer`).
    /// PostgreSQL: a pool of one connection per writer, so that their
    /// sockets are driven by the writers' runtime, not the requests'.
    pub async fn for_writer_thread(&self, writers: u32) -> StoreResult<Store> {
        match self {
            Store::Sqlite(_) => Ok(self.clone()),
            Store::Postgres(pool) => Ok(Store::Postgres(
                PgPoolOptions::new()
                    .max_connections(writers)
                    .min_connections(writers)
                    .idle_timeout(None)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with((*pool.connect_options()).clone())
                    .await?,
            )),
        }
    }

    /// The store `/healthz` uses: one connection of its own, held for the
    /// server's life, so a health check never waits behind the shared pool
    /// (under load every shared connection can be busy for a while).
    pub async fn for_health(&self) -> StoreResult<Store> {
        let wait = Duration::from_secs(5);
        Ok(match self {
            Store::Sqlite(pool) => Store::Sqlite(one_held((*pool.connect_options()).clone(), wait).await?),
            Store::Postgres(pool) => Store::Postgres(
                PgPoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .acquire_timeout(wait)
                    .connect_with((*pool.connect_options()).clone())
                    .await?,
            ),
        })
    }

    /// The store the WAL's checkpoints run on (`engine::checkpoints`):
    /// SQLite, one connection of its own held for the server's life;
    /// `None` on PostgreSQL, which checkpoints by itself.
    pub async fn for_checkpoints(&self) -> StoreResult<Option<Store>> {
        match self {
            Store::Sqlite(pool) => {
                Ok(Some(Store::Sqlite(one_held((*pool.connect_options()).clone(), Duration::from_secs(30)).await?)))
            }
            Store::Postgres(_) => Ok(None),
        }
    }

    /// SQLite: copies what the WAL holds into the database file as far as
    /// no reader still needs it, without waiting for any lock (a PASSIVE
    /// checkpoint). Returns the WAL's pages and how many of them are now in
    /// the database file; `None` on PostgreSQL or an in-memory database.
    pub async fn checkpoint(&self) -> StoreResult<Option<(i64, i64)>> {
        match self {
            Store::Sqlite(pool) => {
                let (_busy, log, done): (i64, i64, i64) =
                    sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(pool).await?;
                Ok((log >= 0).then_some((log, done)))
            }
            Store::Postgres(_) => Ok(None),
        }
    }

    /// Applies the backend's pending migrations.
    pub async fn migrate(&self) -> StoreResult<()> {
        match self {
            Store::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
            Store::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// A trivial round trip, for `/healthz`.
    pub async fn ping(&self) -> StoreResult<()> {
        with_pool!(self, pool => { sqlx::query("SELECT 1").execute(pool).await?; });
        Ok(())
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }
}
