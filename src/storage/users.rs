//! App users, their property and event catalogs, events and messages.

use serde_json::{Map, Value as Json};
use sqlx::types::Json as SqlJson;

use super::{
    classify,
    widget::{insert_deliveries, set_due, DeliveryRow, NewDelivery},
    with_pool, Store, StoreError, StoreResult,
};

pub type Properties = Map<String, Json>;

/// Inside the open transaction `$tx`: is `$user_id` (a `userId` being
/// given) the murmur id of a user of app `$app_id`? Such a `userId` is
/// refused, so that it can never be confused with that user.
macro_rules! id_taken {
    ($tx:ident, $app_id:expr, $user_id:expr) => {
        sqlx::query_scalar::<_, String>("SELECT id FROM app_users WHERE app_id = $1 AND id = $2")
            .bind($app_id)
            .bind($user_id)
            .fetch_optional(&mut *$tx)
            .await?
            .is_some()
    };
}
pub(crate) use id_taken;

/// Stores a message of user `$user_id` inside the open transaction `$tx`;
/// `$kind`: `None` for one written by the user, a teammate or the API,
/// `Some("office_hours")` for the automatic reply.
macro_rules! insert_message {
    ($tx:ident, $app_id:expr, $user_id:expr, $m:expr, $kind:expr) => {{
        let m: &MessageRow = $m;
        sqlx::query(
            "INSERT INTO messages (id, app_id, app_user_id, role, name, text, created_at, kind, conversation_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&m.id)
        .bind($app_id)
        .bind($user_id)
        .bind(&m.role)
        .bind(&m.name)
        .bind(&m.text)
        .bind(m.created_at)
        .bind($kind)
        .bind(&m.conversation_id)
        .execute(&mut *$tx)
        .await?;
    }};
}

/// The id of the user `$2` names in app `$1`: murmur's `_id` first, else
/// their `userId`. A `userId` can never take over another user's `_id`
/// (and a new `userId` equal to an existing `_id` is refused).
pub(crate) const USER_BY_REF: &str =
    "(SELECT x.id FROM app_users x WHERE x.app_id = $1 AND (x.id = $2 OR x.user_id = $2) \
     ORDER BY CASE WHEN x.id = $2 THEN 0 ELSE 1 END LIMIT 1)";

impl Store {
    /// What a `SELECT … FROM app_users` that a write depends on ends with:
    /// on PostgreSQL `FOR KEY SHARE`, which holds the rows until the commit
    /// (a concurrent delete waits, and a delete in progress is waited for,
    /// after which the row is not found); SQLite's writes are one at a time
    /// (`BEGIN IMMEDIATE`) and need nothing.
    pub(crate) fn hold_user(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "",
            Store::Postgres(_) => " FOR KEY SHARE",
        }
    }

    /// What guards an app's users against deletion while events are
    /// written for them, on PostgreSQL, where events have no foreign key to
    /// their user (migration 0020): an advisory lock on the app, held until
    /// the commit, shared by writers of events (`$1`: the batch's app ids)
    /// and exclusive for whoever deletes or merges the app's users (`$1`:
    /// the app id). A deletion waits for the batches in flight, whose events
    /// its trigger then deletes; a batch waits for a deletion in progress,
    /// after which the user is not found. SQLite: nothing (one writer at a
    /// time, and its foreign keys remain).
    pub fn users_guard(&self, exclusive: bool) -> Option<&'static str> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(_) if exclusive => {
                Some("SELECT pg_advisory_xact_lock(hashtextextended('murmur app_users ' || $1, 0))")
            }
            Store::Postgres(_) => Some(
                "SELECT pg_advisory_xact_lock_shared(hashtextextended('murmur app_users ' || a, 0)) \
                 FROM (SELECT DISTINCT a FROM unnest($1::text[]) AS x(a) ORDER BY a) s",
            ),
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AppUserRow {
    pub id: String,
    pub app_id: String,
    pub user_id: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub email: Option<String>,
    pub signed_up_at: i64,
    pub last_seen_at: Option<i64>,
    pub app_version: Option<String>,
    pub platform: Option<String>,
    pub properties: SqlJson<Properties>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Store {
    /// The users table's columns for `AppUserRow` (unqualified: every query
    /// using them reads the users table alone).
    /// SQLite keeps properties as binary JSONB (faster to filter on), read
    /// back as text; PostgreSQL's JSONB decodes directly.
    pub(crate) fn user_columns(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => {
                "id, app_id, user_id, given_name, surname, email, signed_up_at, last_seen_at, \
                 app_version, platform, json(properties) AS properties, created_at, updated_at"
            }
            Store::Postgres(_) => {
                "id, app_id, user_id, given_name, surname, email, signed_up_at, last_seen_at, \
                 app_version, platform, properties, created_at, updated_at"
            }
        }
    }

    /// `user_columns`, each taken from the table aliased `alias`.
    pub(crate) fn user_columns_of(&self, alias: &str) -> String {
        self.user_columns()
            .split(',')
            .map(|c| {
                let c = c.trim();
                match c.strip_prefix("json(") {
                    Some(rest) => format!("json({alias}.{rest}"),
                    None => format!("{alias}.{c}"),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A subquery (aliased `mine`) of the events of the user `user` (a
    /// placeholder such as `$1`) that match `cond`
    /// (SQL over `{at}` and `{id}`, the event's time and id, and `e`, the
    /// events table), with columns `id`, `name`, `created_at` and
    /// `properties` (as text). A user's events are in two places: those
    /// folded, found by `events_by_user` (migration 0022), and those written
    /// since their app's mark (`fold_event_users`), a range of ids past it;
    /// one statement reads both, so a fold in between moves none from one to
    /// the other unseen. With `limit`, each place gives its newest `limit`
    /// (the caller orders and limits the whole).
    pub(crate) fn user_events_union(&self, user: &str, cond: &str, limit: Option<&str>) -> String {
        let props = match self {
            Store::Sqlite(_) => "e.properties",
            Store::Postgres(_) => "e.properties::text",
        };
        let cols = format!("e.id AS id, e.name AS name, e.created_at AS created_at, {props} AS properties");
        let newest =
            |at: &str, id: &str| limit.map(|n| format!(" ORDER BY {at} DESC, {id} DESC LIMIT {n}")).unwrap_or_default();
        let cond_on = |at: &str, id: &str| cond.replace("{at}", at).replace("{id}", id);
        format!(
            "(SELECT * FROM (SELECT {cols} FROM events_by_user x JOIN events e ON e.id = x.event_id \
               WHERE x.app_user_id = {user} AND {folded}{folded_newest}) folded \
              UNION ALL \
              SELECT * FROM (SELECT {cols} FROM events e \
               WHERE e.id > (SELECT COALESCE(f.through, 0) FROM app_users u \
                             LEFT JOIN event_users_folded f ON f.app_id = u.app_id WHERE u.id = {user}) \
               AND e.app_user_id = {user} AND {recent}{recent_newest}) recent) mine",
            folded = cond_on("x.created_at", "x.event_id"),
            folded_newest = newest("x.created_at", "x.event_id"),
            recent = cond_on("e.created_at", "e.id"),
            recent_newest = newest("e.created_at", "e.id"),
        )
    }

    /// How a bound JSON text parameter becomes the stored form.
    pub(crate) fn json_param(&self, n: usize) -> String {
        match self {
            Store::Sqlite(_) => format!("jsonb(${n})"),
            Store::Postgres(_) => format!("${n}"),
        }
    }
}

/// A user to create. Custom property values are stored as JSON: text as
/// strings, numbers, booleans, and dates as Unix-millisecond integers.
#[derive(Debug, Clone)]
pub struct NewAppUser {
    pub id: String,
    pub app_id: String,
    pub user_id: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub email: Option<String>,
    pub signed_up_at: i64,
    pub app_version: Option<String>,
    pub app_version_key: Option<String>,
    pub platform: Option<String>,
    pub properties: Properties,
    pub now: i64,
}

/// Changes to a user; `None` keeps a field, `Some(None)` clears it. In
/// `properties`, a JSON null removes the property.
#[derive(Debug, Clone, Default)]
pub struct AppUserChanges {
    pub given_name: Option<Option<String>>,
    pub surname: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub signed_up_at: Option<i64>,
    /// (display text, sort key)
    pub app_version: Option<Option<(String, String)>>,
    pub platform: Option<Option<String>>,
    pub properties: Properties,
    /// Widget start: the user was seen at this time.
    pub last_seen_at: Option<i64>,
}

/// One user update waiting for a group commit.
#[derive(Debug, Clone)]
pub struct PendingUpdate {
    pub app_id: String,
    pub user_ref: String,
    pub changes: AppUserChanges,
    pub types: Vec<(String, &'static str)>,
    pub max_properties: i64,
    /// The writer may add names to the property catalog, fixing their type
    /// (the customer's backend, a verified widget). False for an anonymous
    /// widget: its new names are stored on the user but not registered.
    pub fix_types: bool,
    /// Most names the app's property catalog may hold.
    pub max_catalog: i64,
    pub now: i64,
}

/// Why a user write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum UserWriteError {
    #[error("property {name} already has type {existing}")]
    TypeConflict { name: String, existing: String },
    #[error("too many properties")]
    TooManyProperties,
    /// The app's property catalog holds `max` names already.
    #[error("the property catalog is full")]
    CatalogFull { max: i64 },
    #[error("no such user")]
    NotFound,
    #[error("a user with this userId exists")]
    Duplicate,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for UserWriteError {
    fn from(e: sqlx::Error) -> Self {
        match classify(e) {
            StoreError::Duplicate => UserWriteError::Duplicate,
            other => UserWriteError::Store(other),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CatalogEntry {
    pub name: String,
    pub ty: String,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventRow {
    pub name: String,
    pub created_at: i64,
    /// The event's properties as JSON text, if any.
    pub properties: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MessageRow {
    pub id: String,
    pub role: String,
    pub name: Option<String>,
    pub text: String,
    pub created_at: i64,
    /// The conversation it belongs to (set when it is stored).
    pub conversation_id: Option<String>,
}

/// Registers each (name, type) in the app's property catalog, inside the
/// caller's transaction. The first type a writer that may fix types
/// (`$fix`: the customer's backend, a verified widget) gives a name is its
/// type; a different one later is a conflict and the caller's transaction
/// is abandoned. Without `$fix` (an anonymous widget) a new name is not
/// registered (the value is stored, no type is fixed) and a known one is
/// still checked. A new name that would take the catalog past `$max` names
/// is refused (`CatalogFull`).
macro_rules! register_types {
    ($tx:expr, $app_id:expr, $types:expr, $now:expr, $fix:expr, $max:expr) => {
        for (name, ty) in $types {
            // Insert first: on SQLite a transaction that writes first holds
            // the write lock at once.
            if $fix {
                let added = sqlx::query(
                    "INSERT INTO property_catalog (app_id, name, ty, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (app_id, name) DO NOTHING",
                )
                .bind($app_id)
                .bind(name)
                .bind(ty)
                .bind($now)
                .execute(&mut *$tx)
                .await?
                .rows_affected();
                if added > 0 {
                    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM property_catalog WHERE app_id = $1")
                        .bind($app_id)
                        .fetch_one(&mut *$tx)
                        .await?;
                    if n > $max {
                        return Err(UserWriteError::CatalogFull { max: $max });
                    }
                }
            }
            let existing: Option<String> =
                sqlx::query_scalar("SELECT ty FROM property_catalog WHERE app_id = $1 AND name = $2")
                    .bind($app_id)
                    .bind(name)
                    .fetch_optional(&mut *$tx)
                    .await?;
            if let Some(existing) = existing.filter(|e| e != ty) {
                return Err(UserWriteError::TypeConflict { name: name.to_string(), existing });
            }
        }
    };
}

impl Store {
    /// Creates a user, registering its property types, in one transaction.
    pub async fn create_app_user(
        &self,
        u: &NewAppUser,
        types: &[(String, &'static str)],
    ) -> Result<AppUserRow, UserWriteError> {
        self.create_app_user_capped(u, types, i64::MAX).await
    }

    /// As `create_app_user`, refusing new property names past `max_catalog`
    /// names in the app's catalog (`CatalogFull`, nothing written).
    pub async fn create_app_user_capped(
        &self,
        u: &NewAppUser,
        types: &[(String, &'static str)],
        max_catalog: i64,
    ) -> Result<AppUserRow, UserWriteError> {
        let sql = format!(
            "INSERT INTO app_users (id, app_id, user_id, given_name, surname, email, signed_up_at, last_seen_at, \
             app_version, app_version_key, platform, properties, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9, $10, {}, $12, $12) RETURNING {}",
            self.json_param(11),
            self.user_columns()
        );
        Ok(with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            register_types!(tx, &u.app_id, types, u.now, true, max_catalog);
            let row: AppUserRow = sqlx::query_as(&sql)
                .bind(&u.id)
                .bind(&u.app_id)
                .bind(&u.user_id)
                .bind(&u.given_name)
                .bind(&u.surname)
                .bind(&u.email)
                .bind(u.signed_up_at)
                .bind(&u.app_version)
                .bind(&u.app_version_key)
                .bind(&u.platform)
                .bind(SqlJson(&u.properties))
                .bind(u.now)
                .fetch_one(&mut *tx)
                .await?;
            // Checked after the insert: on SQLite, a transaction that writes
            // first holds the write lock, so it cannot be refused halfway.
            if let Some(user_id) = &u.user_id {
                if id_taken!(tx, &u.app_id, user_id) {
                    return Err(UserWriteError::Duplicate);
                }
            }
            // A new user is due now for every active property-match whisper:
            // the scheduler's next tick checks them (time may make them match later).
            sqlx::query(
                "INSERT INTO whisper_due (app_user_id, app_id, due_at) \
                 SELECT $2, $1, $3 WHERE EXISTS (SELECT 1 FROM whispers WHERE app_id = $1 AND status = 'active' \
                   AND trigger_kind = 'property_match' AND deleted_at IS NULL)",
            )
            .bind(&u.app_id)
            .bind(&row.id)
            .bind(u.now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            row
        }))
    }

    /// Applies changes to the user `user_ref` (their userId or murmur id) of
    /// `app_id`, atomically: property types are registered, properties
    /// merged, and the property limit checked, or nothing is written.
    pub async fn update_app_user(
        &self,
        app_id: &str,
        user_ref: &str,
        c: &AppUserChanges,
        types: &[(String, &'static str)],
        max_properties: i64,
        now: i64,
    ) -> Result<AppUserRow, UserWriteError> {
        let job = PendingUpdate {
            app_id: app_id.into(),
            user_ref: user_ref.into(),
            changes: c.clone(),
            types: types.to_vec(),
            max_properties,
            fix_types: true,
            max_catalog: i64::MAX,
            now,
        };
        let mut out = self.update_app_users_batch(std::slice::from_ref(&job), vec![None]).await?;
        out.pop().unwrap_or(Err(UserWriteError::NotFound)).map(|(row, _)| row)
    }

    /// Applies several users' changes in one transaction (one durable
    /// commit), each inside its own savepoint: a refused change (unknown
    /// user, type conflict, too many properties) is rolled back alone and
    /// reported in its place, the others are kept. Each update's plan (if
    /// any) is run on the updated row and its deliveries inserted in the
    /// same savepoint; returned are the deliveries created.
    pub async fn update_app_users_batch(
        &self,
        batch: &[PendingUpdate],
        plans: Vec<Option<UpdatePlan>>,
    ) -> StoreResult<Vec<Result<(AppUserRow, Vec<DeliveryRow>), UserWriteError>>> {
        let (merge, count) = match self {
            Store::Sqlite(_) => (
                "jsonb_patch(properties, $15)",
                "SELECT COUNT(*) FROM json_each((SELECT properties FROM app_users WHERE id = $1))",
            ),
            Store::Postgres(_) => (
                "jsonb_strip_nulls(properties || $15)",
                "SELECT COUNT(*) FROM jsonb_object_keys((SELECT properties FROM app_users WHERE id = $1))",
            ),
        };
        let sql = format!(
            "UPDATE app_users SET \
               given_name = CASE WHEN $3 THEN $4 ELSE given_name END, \
               surname = CASE WHEN $5 THEN $6 ELSE surname END, \
               email = CASE WHEN $7 THEN $8 ELSE email END, \
               signed_up_at = COALESCE($9, signed_up_at), \
               app_version = CASE WHEN $10 THEN $11 ELSE app_version END, \
               app_version_key = CASE WHEN $10 THEN $12 ELSE app_version_key END, \
               platform = CASE WHEN $13 THEN $14 ELSE platform END, \
               properties = {merge}, \
               last_seen_at = COALESCE($17, last_seen_at), \
               updated_at = $16 \
             WHERE id = {USER_BY_REF} RETURNING {}",
            self.user_columns()
        );
        let mut results = Vec::with_capacity(batch.len());
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for (job, plan) in batch.iter().zip(plans) {
                let mut sp = sqlx::Acquire::begin(&mut tx).await?;
                let outcome: Result<(AppUserRow, Vec<DeliveryRow>), UserWriteError> = async {
                    let c = &job.changes;
                    let (version_set, version, version_key) = match &c.app_version {
                        None => (false, None, None),
                        Some(None) => (true, None, None),
                        Some(Some((v, k))) => (true, Some(v.clone()), Some(k.clone())),
                    };
                    // The update comes first so that SQLite takes its write
                    // lock at once (a read-then-write transaction can deadlock).
                    let row: Option<AppUserRow> = sqlx::query_as(&sql)
                        .bind(&job.app_id)
                        .bind(&job.user_ref)
                        .bind(c.given_name.is_some())
                        .bind(c.given_name.clone().flatten())
                        .bind(c.surname.is_some())
                        .bind(c.surname.clone().flatten())
                        .bind(c.email.is_some())
                        .bind(c.email.clone().flatten())
                        .bind(c.signed_up_at)
                        .bind(version_set)
                        .bind(version)
                        .bind(version_key)
                        .bind(c.platform.is_some())
                        .bind(c.platform.clone().flatten())
                        .bind(SqlJson(&c.properties))
                        .bind(job.now)
                        .bind(c.last_seen_at)
                        .fetch_optional(&mut *sp)
                        .await?;
                    let Some(row) = row else { return Err(UserWriteError::NotFound) };
                    register_types!(sp, &job.app_id, &job.types, job.now, job.fix_types, job.max_catalog);
                    let n: i64 = sqlx::query_scalar(count).bind(&row.id).fetch_one(&mut *sp).await?;
                    if n > job.max_properties {
                        return Err(UserWriteError::TooManyProperties);
                    }
                    let planned = match plan {
                        Some(p) => {
                            let received: Received =
                                sqlx::query_scalar("SELECT whisper_id FROM deliveries WHERE app_user_id = $1")
                                    .bind(&row.id)
                                    .fetch_all(&mut *sp)
                                    .await?
                                    .into_iter()
                                    .collect();
                            p(&row, &received)
                        }
                        None => Planned::default(),
                    };
                    let created = insert_deliveries!(sp, planned.deliveries);
                    set_due!(sp, &row.app_id, &row.id, planned);
                    let delivered =
                        planned.deliveries.iter().filter(|d| created.contains(&d.id)).map(NewDelivery::row).collect();
                    Ok((row, delivered))
                }
                .await;
                match outcome {
                    Ok(row) => {
                        sp.commit().await?;
                        results.push(Ok(row));
                    }
                    Err(e) => {
                        sp.rollback().await?;
                        results.push(Err(e));
                    }
                }
            }
            tx.commit().await?;
        });
        Ok(results)
    }

    /// The user `user_ref` (userId or murmur id) of `app_id`.
    pub async fn app_user(&self, app_id: &str, user_ref: &str) -> StoreResult<Option<AppUserRow>> {
        let sql = format!("SELECT {} FROM app_users u WHERE u.id = {USER_BY_REF}", self.user_columns());
        Ok(with_pool!(self, pool => sqlx::query_as(&sql).bind(app_id).bind(user_ref).fetch_optional(pool).await?))
    }

    /// Whether a starting widget's user exists: by `user_id` if it names
    /// one, else by its device.
    pub async fn widget_user_exists(
        &self,
        app_id: &str,
        user_id: Option<&str>,
        device_id: Option<&str>,
    ) -> StoreResult<bool> {
        let (sql, key) = match (user_id, device_id) {
            (Some(u), _) => ("SELECT 1 FROM app_users WHERE app_id = $1 AND user_id = $2", u),
            (None, Some(d)) => ("SELECT 1 FROM app_users WHERE app_id = $1 AND device_id = $2", d),
            (None, None) => return Ok(false),
        };
        let hit: Option<i32> =
            with_pool!(self, pool => sqlx::query_scalar(sql).bind(app_id).bind(key).fetch_optional(pool).await?);
        Ok(hit.is_some())
    }

    /// Deletes a user with their events and messages. False if none.
    pub async fn delete_app_user(&self, app_id: &str, user_ref: &str) -> StoreResult<bool> {
        let guard = self.users_guard(true);
        let n = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            if let Some(guard) = guard {
                sqlx::query(guard).bind(app_id).execute(&mut *tx).await?;
            }
            let n = sqlx::query(&format!("DELETE FROM app_users WHERE id = {USER_BY_REF}"))
                .bind(app_id)
                .bind(user_ref)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            n
        });
        Ok(n > 0)
    }

    /// The app's custom property types, by name.
    pub async fn property_types(
        &self,
        app_id: &str,
    ) -> StoreResult<std::collections::HashMap<String, crate::domain::properties::PropType>> {
        use crate::domain::properties::PropType;
        Ok(self
            .property_catalog(app_id)
            .await?
            .into_iter()
            .filter_map(|c| PropType::parse(&c.ty).map(|t| (c.name, t)))
            .collect())
    }

    pub async fn property_catalog(&self, app_id: &str) -> StoreResult<Vec<CatalogEntry>> {
        Ok(
            with_pool!(self, pool => sqlx::query_as("SELECT name, ty FROM property_catalog WHERE app_id = $1 ORDER BY name")
            .bind(app_id)
            .fetch_all(pool)
            .await?),
        )
    }

    pub async fn event_catalog(&self, app_id: &str) -> StoreResult<Vec<String>> {
        Ok(
            with_pool!(self, pool => sqlx::query_scalar("SELECT name FROM event_catalog WHERE app_id = $1 ORDER BY name")
            .bind(app_id)
            .fetch_all(pool)
            .await?),
        )
    }

    /// Records an event for the user `user_ref`; false if there is no such
    /// user in this app (nothing is written then). A batch of one.
    pub async fn insert_event(
        &self,
        app_id: &str,
        user_ref: &str,
        name: &str,
        at: i64,
        properties: Option<&str>,
    ) -> StoreResult<bool> {
        let event = PendingEvent {
            app_id: app_id.to_string(),
            user_ref: user_ref.to_string(),
            name: name.to_string(),
            at,
            properties: properties.map(str::to_string),
            max_catalog: i64::MAX,
        };
        Ok(self.insert_events_batch(std::slice::from_ref(&event)).await?[0])
    }

    /// A user's most recent events, newest first.
    pub async fn user_events(&self, app_user_id: &str, limit: i64) -> StoreResult<Vec<EventRow>> {
        let sql = format!(
            "SELECT name, created_at, properties FROM {} ORDER BY created_at DESC, id DESC LIMIT $2",
            self.user_events_union("$1", "TRUE", Some("$2"))
        );
        Ok(with_pool!(self, pool => sqlx::query_as(
            &sql,
        )
        .bind(app_user_id)
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }

    /// A user's conversation, oldest first, the last `limit` messages.
    pub async fn user_messages(&self, app_user_id: &str, limit: i64) -> StoreResult<Vec<MessageRow>> {
        let mut rows: Vec<MessageRow> = with_pool!(self, pool => sqlx::query_as(
            "SELECT id, role, name, text, created_at, conversation_id FROM messages WHERE app_user_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(app_user_id)
        .bind(limit)
        .fetch_all(pool)
        .await?);
        rows.reverse();
        Ok(rows)
    }
}

impl Store {
    /// The property catalog with, for each property, how many users had it
    /// when the app's catalog was last counted (`None`: not counted since
    /// the property appeared).
    pub async fn property_catalog_counts(&self, app_id: &str) -> StoreResult<Vec<(String, String, Option<i64>)>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT name, ty, users FROM property_catalog WHERE app_id = $1 ORDER BY name",
        )
        .bind(app_id)
        .fetch_all(pool)
        .await?))
    }

    /// The event catalog with, for each event, how many users had done it
    /// when the app's catalog was last counted.
    pub async fn event_catalog_counts(&self, app_id: &str) -> StoreResult<Vec<(String, Option<i64>)>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT name, users FROM event_catalog WHERE app_id = $1 ORDER BY name",
        )
        .bind(app_id)
        .fetch_all(pool)
        .await?))
    }

    /// When `app_id`'s catalog was last counted.
    pub async fn catalog_counted_at(&self, app_id: &str) -> StoreResult<Option<i64>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar("SELECT counted_at FROM catalog_counts WHERE app_id = $1")
            .bind(app_id)
            .fetch_optional(pool)
            .await?))
    }

    /// Counts, for every property of `app_id`, the users who have it, and
    /// for every event the distinct users who did it: the app's new events
    /// folded into who did each event first (`fold_event_users`), then one
    /// pass over the app's users (their property names) and one over who
    /// did each event, read first and then written in one short transaction.
    pub async fn recount_catalog(&self, app_id: &str, now: i64) -> StoreResult<()> {
        self.fold_event_users(app_id).await?;
        let props_sql = match self {
            Store::Sqlite(_) => {
                "SELECT j.key, COUNT(*) FROM app_users u, json_each(u.properties) j WHERE u.app_id = $1 GROUP BY j.key"
            }
            Store::Postgres(_) => {
                "SELECT k, COUNT(*) FROM app_users u, jsonb_object_keys(u.properties) k WHERE u.app_id = $1 GROUP BY k"
            }
        };
        let props: Vec<(String, i64)> =
            with_pool!(self, pool => sqlx::query_as(props_sql).bind(app_id).fetch_all(pool).await?);
        // `event_users` holds each (user, name) once (migration 0019).
        let events: Vec<(String, i64)> = with_pool!(self, pool => sqlx::query_as(
            "SELECT e.name, COUNT(*) FROM app_users u JOIN event_users e ON e.app_user_id = u.id \
             WHERE u.app_id = $1 GROUP BY e.name",
        )
        .bind(app_id)
        .fetch_all(pool)
        .await?);
        let props = serde_json::to_string(&props.into_iter().collect::<std::collections::HashMap<_, _>>())
            .expect("counts are JSON");
        let events = serde_json::to_string(&events.into_iter().collect::<std::collections::HashMap<_, _>>())
            .expect("counts are JSON");
        // Every catalog row gets its count (0 when no one has it now), from
        // the counts passed as one JSON object per table.
        let (props_update, events_update) = match self {
            Store::Sqlite(_) => (
                "UPDATE property_catalog SET users = COALESCE((SELECT j.value FROM json_each($2) j WHERE j.key = property_catalog.name), 0) WHERE app_id = $1",
                "UPDATE event_catalog SET users = COALESCE((SELECT j.value FROM json_each($2) j WHERE j.key = event_catalog.name), 0) WHERE app_id = $1",
            ),
            Store::Postgres(_) => (
                "UPDATE property_catalog SET users = COALESCE(($2::jsonb ->> name)::bigint, 0) WHERE app_id = $1",
                "UPDATE event_catalog SET users = COALESCE(($2::jsonb ->> name)::bigint, 0) WHERE app_id = $1",
            ),
        };
        let upsert = "INSERT INTO catalog_counts (app_id, counted_at) VALUES ($1, $2) \
                      ON CONFLICT (app_id) DO UPDATE SET counted_at = excluded.counted_at";
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(props_update).bind(app_id).bind(&props).execute(&mut *tx).await?;
            sqlx::query(events_update).bind(app_id).bind(&events).execute(&mut *tx).await?;
            sqlx::query(upsert).bind(app_id).bind(now).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Folds `app_id`'s events written since its last fold into
    /// `event_users` (who did each event; migration 0021) and
    /// `events_by_user` (each user's events; migration 0022): the new
    /// (user, name) pairs and (user, time, event) entries in key order,
    /// `FOLD_CHUNK` event ids per transaction, each moving the app's mark
    /// (`event_users_folded`).
    /// Returns how many event ids it went over (every app's: the app's
    /// events are among them).
    ///
    /// The mark must never pass an event that commits later. SQLite commits
    /// one writer at a time and hands out ids in that order, so the highest
    /// committed id is safe. On PostgreSQL a batch may commit after one with
    /// higher ids: the highest id is read holding the app's users guard
    /// exclusively (`users_guard`), which waits for the app's batches in
    /// flight, each of which holds it shared from before its first id.
    pub async fn fold_event_users(&self, app_id: &str) -> StoreResult<u64> {
        let mut through: i64 = with_pool!(self, pool => sqlx::query_scalar(
            "SELECT through FROM event_users_folded WHERE app_id = $1",
        )
        .bind(app_id)
        .fetch_optional(pool)
        .await?)
        .unwrap_or(0);
        let last = "SELECT COALESCE(MAX(id), 0) FROM events";
        let upto: i64 = match self {
            Store::Sqlite(pool) => sqlx::query_scalar(last).fetch_one(pool).await?,
            Store::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                if let Some(guard) = self.users_guard(true) {
                    sqlx::query(guard).bind(app_id).execute(&mut *tx).await?;
                }
                let upto = sqlx::query_scalar(last).fetch_one(&mut *tx).await?;
                tx.commit().await?;
                upto
            }
        };
        let (fold, by_user, mark) = (
            "INSERT INTO event_users (app_user_id, name) \
             SELECT DISTINCT app_user_id, name FROM events WHERE id > $2 AND id <= $3 AND app_id = $1 \
             ORDER BY 1, 2 ON CONFLICT DO NOTHING",
            "INSERT INTO events_by_user (app_user_id, created_at, event_id) \
             SELECT app_user_id, created_at, id FROM events WHERE id > $2 AND id <= $3 AND app_id = $1 \
             ORDER BY 1, 2, 3 ON CONFLICT DO NOTHING",
            "INSERT INTO event_users_folded (app_id, through) VALUES ($1, $2) \
             ON CONFLICT (app_id) DO UPDATE SET through = CASE WHEN excluded.through > event_users_folded.through \
             THEN excluded.through ELSE event_users_folded.through END",
        );
        let mut read = 0;
        while through < upto {
            let next = upto.min(through + FOLD_CHUNK);
            macro_rules! fold_chunk {
                ($tx:ident) => {{
                    sqlx::query(fold).bind(app_id).bind(through).bind(next).execute(&mut *$tx).await?;
                    sqlx::query(by_user).bind(app_id).bind(through).bind(next).execute(&mut *$tx).await?;
                    sqlx::query(mark).bind(app_id).bind(next).execute(&mut *$tx).await?;
                    $tx.commit().await?;
                }};
            }
            match self {
                // IMMEDIATE: it reads before it writes (see `track_batch`).
                Store::Sqlite(pool) => {
                    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                    fold_chunk!(tx)
                }
                Store::Postgres(pool) => {
                    let mut tx = pool.begin().await?;
                    // A user deleted meanwhile waits for the fold, so no
                    // pair outlives its user (SQLite writes one at a time).
                    if let Some(guard) = self.users_guard(false) {
                        sqlx::query(guard).bind(vec![app_id]).execute(&mut *tx).await?;
                    }
                    fold_chunk!(tx)
                }
            }
            read += (next - through) as u64;
            through = next;
        }
        Ok(read)
    }

    /// Folds every app's new events into `event_users` (the housekeeping,
    /// every `FOLD_EVERY_MS`). Returns how many event ids it went over.
    pub async fn fold_all_event_users(&self) -> StoreResult<u64> {
        let apps: Vec<String> =
            with_pool!(self, pool => sqlx::query_scalar("SELECT id FROM apps ORDER BY id").fetch_all(pool).await?);
        let mut read = 0;
        for app in &apps {
            read += self.fold_event_users(app).await?;
        }
        Ok(read)
    }

    /// Recounts the catalog of every app not counted for `CATALOG_RECOUNT_MS`
    /// (the scheduler's housekeeping). Returns how many apps it counted.
    pub async fn recount_due_catalogs(&self, now: i64) -> StoreResult<usize> {
        let apps: Vec<String> = with_pool!(self, pool => sqlx::query_scalar(
            "SELECT a.id FROM apps a LEFT JOIN catalog_counts c ON c.app_id = a.id \
             WHERE c.counted_at IS NULL OR c.counted_at <= $1 ORDER BY a.id",
        )
        .bind(now - CATALOG_RECOUNT_MS)
        .fetch_all(pool)
        .await?);
        for app in &apps {
            self.recount_catalog(app, now).await?;
        }
        Ok(apps.len())
    }
}

/// How many event ids one transaction of `fold_event_users` goes over.
pub const FOLD_CHUNK: i64 = 100_000;

/// How often the housekeeping folds new events into `event_users` and
/// `events_by_user`. A user's events since the last fold are read from a
/// range of ids (`user_events_union`), which this keeps short.
pub const FOLD_EVERY_MS: i64 = 10 * 1000;

/// How old an app's catalog counts may get before the housekeeping counts
/// them again.
pub const CATALOG_RECOUNT_MS: i64 = 10 * 60 * 1000;

/// One message waiting for a group commit.
#[derive(Debug, Clone)]
pub struct PendingMessage {
    pub app_id: String,
    pub user_ref: String,
    pub message: MessageRow,
    /// Take the author's name from the user's row (a user's own message).
    pub name_from_user: bool,
    /// Outside office hours: the automatic reply (see `OfficeReply`).
    pub office_reply: Option<OfficeReply>,
    /// The conversation it joins (found or started in its transaction).
    pub joining: super::conversations::Joining,
}

/// The reply a user's message gets outside office hours: sent once per
/// closed period (not if one was sent since `since`, when the team last
/// closed); when it is sent, first-message whispers do not also fire.
#[derive(Clone)]
pub struct OfficeReply {
    pub id: String,
    pub since: i64,
    pub name: Option<String>,
    /// The reply's text for this user (personalised).
    pub text: std::sync::Arc<dyn Fn(&AppUserRow) -> String + Send + Sync>,
}

impl std::fmt::Debug for OfficeReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfficeReply").field("id", &self.id).field("since", &self.since).finish()
    }
}

/// A stored message, its user, and whether it was the user's first own message.
#[derive(Debug, Clone)]
pub struct PostedMessage {
    pub user: AppUserRow,
    pub message: MessageRow,
    pub first: bool,
    pub delivered: Vec<DeliveryRow>,
    /// The office-hours reply it got, if any.
    pub reply: Option<MessageRow>,
    /// Its conversation after it (and the reply) joined.
    pub conversation: super::conversations::ConversationRow,
    /// The message started that conversation.
    pub started: bool,
}

impl Store {
    /// Stores messages in one transaction. Per message: `None` if its user
    /// does not exist (nothing written), else the stored message; a user's
    /// first own message (`appUser`, none before it) runs its plan on the
    /// user's row and inserts the deliveries in the same transaction.
    pub async fn insert_messages_batch(
        &self,
        batch: &[PendingMessage],
        plans: Vec<Option<DeliveryPlan>>,
    ) -> StoreResult<Vec<Option<PostedMessage>>> {
        // PostgreSQL: the user's row is held (`FOR KEY SHARE`) until the
        // commit, so a delete of that user waits for this write, or this
        // write, coming after a delete in progress, finds no user. Without
        // it the row read here could be one being deleted, and the message's
        // foreign key would fail at the insert (seen as a 500 in the fuzz).
        let select =
            format!("SELECT {} FROM app_users u WHERE u.id = {USER_BY_REF}{}", self.user_columns(), self.hold_user());
        let mut out = Vec::with_capacity(batch.len());
        with_pool!(self, pool => {
            let mut tx = match self {
                Store::Sqlite(_) => pool.begin_with("BEGIN IMMEDIATE").await?,
                Store::Postgres(_) => pool.begin().await?,
            };
            for (job, plan) in batch.iter().zip(plans) {
                let user: Option<AppUserRow> =
                    sqlx::query_as(&select).bind(&job.app_id).bind(&job.user_ref).fetch_optional(&mut *tx).await?;
                let Some(user) = user else {
                    out.push(None);
                    continue;
                };
                let mut m = job.message.clone();
                if job.name_from_user {
                    m.name = crate::domain::messages::display_name(user.given_name.as_deref(), user.surname.as_deref());
                }
                let first = m.role == "appUser"
                    && sqlx::query_scalar::<_, i64>(
                        "SELECT COUNT(*) FROM messages WHERE app_user_id = $1 AND role = 'appUser'",
                    )
                    .bind(&user.id)
                    .fetch_one(&mut *tx)
                    .await?
                        == 0;
                let (conversation, started) = super::conversations::find_or_start_conversation!(
                    tx, &job.app_id, &user.id, m.role.as_str(), &job.joining, m.created_at
                );
                m.conversation_id = Some(conversation.id.clone());
                insert_message!(tx, &job.app_id, &user.id, &m, None::<&str>);
                let mut conversation =
                    super::conversations::touch_conversation!(tx, &conversation.id, &m, m.role == "appMaker");
                let mut reply = None;
                if let (Some(o), "appUser") = (&job.office_reply, m.role.as_str()) {
                    let sent: Option<String> = sqlx::query_scalar(
                        "SELECT id FROM messages WHERE app_user_id = $1 AND kind = 'office_hours' AND created_at >= $2 LIMIT 1",
                    )
                    .bind(&user.id)
                    .bind(o.since)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if sent.is_none() {
                        // Just after the message it answers.
                        let r = MessageRow {
                            id: o.id.clone(),
                            role: "appMaker".into(),
                            name: o.name.clone(),
                            text: (o.text)(&user),
                            created_at: m.created_at + 1,
                            conversation_id: Some(conversation.id.clone()),
                        };
                        insert_message!(tx, &job.app_id, &user.id, &r, Some("office_hours"));
                        conversation = super::conversations::touch_conversation!(tx, &conversation.id, &r, false);
                        reply = Some(r);
                    }
                }
                // The office-hours reply stands in for the auto-response.
                let planned = match (first && reply.is_none(), plan) {
                    (true, Some(plan)) => plan(&user),
                    _ => vec![],
                };
                let created = insert_deliveries!(tx, planned);
                let delivered = planned.iter().filter(|d| created.contains(&d.id)).map(NewDelivery::row).collect();
                out.push(Some(PostedMessage { user, message: m, first, delivered, reply, conversation, started }));
            }
            tx.commit().await?;
        });
        Ok(out)
    }
}

/// One tracked event waiting for a group commit.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    pub app_id: String,
    pub user_ref: String,
    pub name: String,
    pub at: i64,
    /// Properties as JSON text (already checked), if any.
    pub properties: Option<String>,
    /// Most names the app's event catalog may hold: an event with a new
    /// name past it is refused (`Tracked::catalog_full`, nothing written).
    pub max_catalog: i64,
}

/// The deliveries a write should attempt, decided from its user's row
/// inside the write's transaction (so that one commit stores both). Made
/// by the delivery engine's planner; pure (no I/O, no locks), so storage
/// runs it without knowing what it decides. Shared, so a failed batch can
/// be retried write by write with the same plans.
pub type DeliveryPlan = std::sync::Arc<dyn Fn(&AppUserRow) -> Vec<NewDelivery> + Send + Sync>;

/// What a plan decides for a user whose values may have changed (or who
/// is due): the deliveries to make now, and when the user is next due for
/// a property-match whisper. `sets_due`: the plan covers the app's
/// property-match whispers, so `due` replaces the user's due time (`None`
/// drops it).
#[derive(Debug, Clone, Default)]
pub struct Planned {
    pub deliveries: Vec<NewDelivery>,
    pub due: Option<i64>,
    pub sets_due: bool,
}

/// A plan for a user update (profile change, app launch) or a due check:
/// given the user's row and the whispers they have received already.
pub type UpdatePlan = std::sync::Arc<dyn Fn(&AppUserRow, &Received) -> Planned + Send + Sync>;

/// The whispers a user has received (ids).
pub type Received = std::collections::HashSet<String>;

/// What happened to one tracked event of a batch.
#[derive(Debug, Clone, Default)]
pub struct Tracked {
    /// Its user exists (an event for an unknown user is not written).
    pub found: bool,
    /// Its name is new and the app's event catalog is full: not written.
    pub catalog_full: bool,
    /// The deliveries its plan made that did not exist yet, as stored.
    pub delivered: Vec<DeliveryRow>,
}

/// Inside the open transaction `$tx`, after the users of `$batch` were
/// resolved into `$users` and the (app, name) pairs already in the event
/// catalog gathered into `$known`: registers each new name of a found event
/// while its app's catalog holds fewer than the event's `max_catalog`
/// names. An event whose new name does not fit is refused: its user is
/// cleared from `$users`, so nothing of it is written. Returns, per event,
/// whether it was refused.
macro_rules! admit_events {
    ($tx:ident, $batch:expr, $users:expr, $known:expr) => {{
        let mut refused = vec![false; $batch.len()];
        // (app, name) decided in this batch: admitted or not.
        let mut decided: std::collections::HashMap<(&str, &str), bool> = std::collections::HashMap::new();
        let mut sizes: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
        for (i, e) in $batch.iter().enumerate() {
            if $users[i].is_none() {
                continue;
            }
            let key = (e.app_id.as_str(), e.name.as_str());
            let admitted = match decided.get(&key) {
                Some(&a) => a,
                None if $known.contains(&(e.app_id.clone(), e.name.clone())) => {
                    decided.insert(key, true);
                    true
                }
                None => {
                    let size = match sizes.get(key.0) {
                        Some(&n) => n,
                        None => {
                            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM event_catalog WHERE app_id = $1")
                                .bind(&e.app_id)
                                .fetch_one(&mut *$tx)
                                .await?
                        }
                    };
                    let admitted = size < e.max_catalog;
                    if admitted {
                        sqlx::query(
                            "INSERT INTO event_catalog (app_id, name, created_at) VALUES ($1, $2, $3) \
                             ON CONFLICT (app_id, name) DO NOTHING",
                        )
                        .bind(&e.app_id)
                        .bind(&e.name)
                        .bind(e.at)
                        .execute(&mut *$tx)
                        .await?;
                    }
                    sizes.insert(key.0, size + i64::from(admitted));
                    decided.insert(key, admitted);
                    admitted
                }
            };
            if !admitted {
                $users[i] = None;
                refused[i] = true;
            }
        }
        refused
    }};
}

impl Store {
    /// Writes a batch of events in one transaction (one durable commit for
    /// all). Returns, per event, whether its user existed.
    pub async fn insert_events_batch(&self, batch: &[PendingEvent]) -> StoreResult<Vec<bool>> {
        let plans = batch.iter().map(|_| None).collect();
        Ok(self.track_batch(batch, plans).await?.into_iter().map(|t| t.found).collect())
    }

    /// Writes a batch of events and the deliveries they trigger in one
    /// transaction: resolves each event's user (the whole row for an event
    /// with a plan, else only the id: `rows_needed`), admits each
    /// event's name to the app's event catalog (a new name past the event's
    /// `max_catalog` is refused: that event is not written), inserts the
    /// events, asks each event's plan (if any) for deliveries given that
    /// row, inserts those (`ON CONFLICT DO NOTHING`: once per user ever),
    /// and commits once. `plans` is parallel to `batch`.
    pub async fn track_batch(
        &self,
        batch: &[PendingEvent],
        plans: Vec<Option<DeliveryPlan>>,
    ) -> StoreResult<Vec<Tracked>> {
        self.track_batch_remembering(batch, plans, &std::sync::Mutex::new(UserIds::new(0))).await
    }

    /// The murmur ids of up to `capacity` users named by a userId (not one
    /// that is another user's murmur id: that is looked up first), read in
    /// one snapshot with the users' epoch, on a connection of its own: what
    /// the writers start remembering from (`UserIds`).
    pub async fn user_ids(&self, capacity: usize) -> StoreResult<UserIds> {
        use futures_util::TryStreamExt;
        use sqlx::Connection;
        let mut known = UserIds::new(capacity);
        if capacity == 0 {
            return Ok(known);
        }
        let named = "u.user_id IS NOT NULL AND u.user_id <> u.id \
                     AND NOT EXISTS (SELECT 1 FROM app_users x WHERE x.id = u.user_id AND x.app_id = u.app_id)";
        match self {
            Store::Sqlite(pool) => {
                let mut conn = sqlx::SqliteConnection::connect_with(&pool.connect_options()).await?;
                {
                    // Deferred: one snapshot from its first read on. In
                    // chunks by rowid, each one row of JSON: a row handed
                    // back from SQLite's worker thread costs a wake-up.
                    let mut tx = conn.begin().await?;
                    known.epoch = Some(sqlx::query_scalar(USER_EPOCH).fetch_one(&mut *tx).await?);
                    let sql = format!(
                        "SELECT MAX(r), json_group_array(json_array(app_id, user_id, id)) FROM \
                         (SELECT u.rowid AS r, u.app_id, u.user_id, u.id FROM app_users u \
                          WHERE u.rowid > $1 AND {named} ORDER BY u.rowid LIMIT $2)"
                    );
                    let mut after = i64::MIN;
                    while known.len() < capacity {
                        let chunk = (capacity - known.len()).min(10_000) as i64;
                        let (last, rows): (Option<i64>, String) =
                            sqlx::query_as(&sql).bind(after).bind(chunk).fetch_one(&mut *tx).await?;
                        let Some(last) = last else { break };
                        let rows: Vec<(String, String, String)> = serde_json::from_str(&rows)
                            .map_err(|e| StoreError::Db(sqlx::Error::Decode(Box::new(e))))?;
                        for (app_id, user_id, id) in rows {
                            known.remember(&app_id, &user_id, &id);
                        }
                        after = last;
                    }
                }
                conn.close().await?;
            }
            Store::Postgres(pool) => {
                let mut conn = sqlx::PgConnection::connect_with(&pool.connect_options()).await?;
                {
                    let mut tx = conn.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
                    known.epoch = Some(sqlx::query_scalar(USER_EPOCH).fetch_one(&mut *tx).await?);
                    let sql = format!("SELECT u.app_id, u.user_id, u.id FROM app_users u WHERE {named} LIMIT $1");
                    let mut rows = sqlx::query_as::<_, (String, String, String)>(&sql)
                        .bind(i64::try_from(capacity).unwrap_or(i64::MAX))
                        .fetch(&mut *tx);
                    while let Some((app_id, user_id, id)) = rows.try_next().await? {
                        known.remember(&app_id, &user_id, &id);
                    }
                }
                conn.close().await?;
            }
        }
        Ok(known)
    }

    /// As `track_batch`; the userIds `known` remembers are not looked up
    /// again while the users' epoch, read in the batch's transaction, stays
    /// the one they were found under, and those it looks up are
    /// remembered. `known` may be shared by writers: it is held only
    /// between statements.
    pub async fn track_batch_remembering(
        &self,
        batch: &[PendingEvent],
        plans: Vec<Option<DeliveryPlan>>,
        known: &std::sync::Mutex<UserIds>,
    ) -> StoreResult<Vec<Tracked>> {
        let remembering = lock(known).capacity > 0;
        let mut users: Vec<Option<EventUser>> = vec![None; batch.len()];
        let cols = self.user_columns_of("u");
        match self {
            Store::Sqlite(pool) => {
                // Per chunk, one statement resolves the users, then one
                // multi-row insert writes the events.
                // IMMEDIATE: the transaction reads before it writes, and a
                // deferred one would fail at once (SQLITE_BUSY_SNAPSHOT) if
                // another connection wrote in between, instead of waiting
                // its turn.
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let (distinct, which) = distinct_user_refs(batch);
                let (rows, mut ids) = rows_needed(&which, &plans, distinct.len());
                let mut resolved: Vec<Option<EventUser>> = vec![None; distinct.len()];
                // The userIds the writer remembers need no lookup while the
                // users' epoch stays (read in this transaction: no other
                // connection writes before it ends).
                if remembering {
                    let epoch: i64 = sqlx::query_scalar(USER_EPOCH).fetch_one(&mut *tx).await?;
                    lock(known).recall(epoch, &distinct, &mut ids, &mut resolved);
                }
                // The users whose rows a plan decides on: per chunk, one
                // statement resolves them (a statement per user costs a round
                // trip to SQLite's worker thread each). Each index gives the
                // row's rowid: murmur's id first, then the userId, then the
                // row by its rowid (three lookups per user; by ids, five).
                for chunk in rows.chunks(500) {
                    // Plain `?` placeholders: SQLite binds them by position,
                    // while each `$N` is looked up by name in a list (the
                    // writer's largest cost at 500 rows, BENCHMARKS.md).
                    let values = ord_values(chunk);
                    let sql = format!(
                        "WITH j(ord, app_id, user_ref) AS (VALUES {values}) \
                         SELECT j.ord AS ord, {cols} FROM j JOIN app_users u ON u.rowid = COALESCE( \
                           (SELECT x.rowid FROM app_users x WHERE x.id = j.user_ref AND x.app_id = j.app_id), \
                           (SELECT x.rowid FROM app_users x WHERE x.app_id = j.app_id AND x.user_id = j.user_ref))"
                    );
                    let mut q = sqlx::query(&sql);
                    for &d in chunk {
                        q = q.bind(distinct[d].0).bind(distinct[d].1);
                    }
                    for row in q.fetch_all(&mut *tx).await? {
                        let ord: i64 = sqlx::Row::try_get(&row, "ord")?;
                        let user = <AppUserRow as sqlx::FromRow<_>>::from_row(&row)?;
                        resolved[ord as usize] = Some(EventUser::Row(Box::new(user)));
                    }
                }
                // The rest need only their ids: the same probes (murmur's id,
                // then the userId and the id from its row), no row to decode,
                // and one row back per chunk (each row handed back from
                // SQLite's worker thread wakes the writer's).
                for chunk in ids.chunks(500) {
                    let values = ord_values(chunk);
                    let sql = format!(
                        "WITH j(ord, app_id, user_ref) AS (VALUES {values}) \
                         SELECT json_group_array(json_array(j.ord, COALESCE( \
                           (SELECT x.id FROM app_users x WHERE x.id = j.user_ref AND x.app_id = j.app_id), \
                           (SELECT x.id FROM app_users x WHERE x.app_id = j.app_id AND x.user_id = j.user_ref)))) FROM j"
                    );
                    let mut q = sqlx::query_scalar::<_, String>(&sql);
                    for &d in chunk {
                        q = q.bind(distinct[d].0).bind(distinct[d].1);
                    }
                    let found: Vec<(usize, Option<String>)> = serde_json::from_str(&q.fetch_one(&mut *tx).await?)
                        .map_err(|e| StoreError::Db(sqlx::Error::Decode(Box::new(e))))?;
                    for (d, id) in found {
                        resolved[d] = id.map(EventUser::Id);
                    }
                }
                if remembering {
                    lock(known).remember_found(&distinct, rows.iter().chain(&ids), &resolved);
                }
                for (user, &d) in users.iter_mut().zip(&which) {
                    user.clone_from(&resolved[d]);
                }
                let found: Vec<bool> = users.iter().map(Option::is_some).collect();
                let mut known = std::collections::HashSet::new();
                for (app_id, name) in catalog_names(batch, &found) {
                    let hit: Option<i64> =
                        sqlx::query_scalar("SELECT 1 FROM event_catalog WHERE app_id = $1 AND name = $2")
                            .bind(app_id)
                            .bind(name)
                            .fetch_optional(&mut *tx)
                            .await?;
                    if hit.is_some() {
                        known.insert((app_id.to_string(), name.to_string()));
                    }
                }
                let refused = admit_events!(tx, batch, users, known);
                let written: Vec<usize> = (0..batch.len()).filter(|&i| users[i].is_some()).collect();
                for chunk in written.chunks(500) {
                    let values = (0..chunk.len()).map(|_| "(?, ?, ?, ?, ?)").collect::<Vec<_>>().join(", ");
                    let sql = format!(
                        "INSERT INTO events (app_id, app_user_id, name, created_at, properties) VALUES {values}"
                    );
                    let mut q = sqlx::query(&sql);
                    for &i in chunk {
                        let (e, user) = (&batch[i], users[i].as_ref().map(EventUser::id));
                        q = q.bind(&e.app_id).bind(user).bind(&e.name).bind(e.at).bind(&e.properties);
                    }
                    q.execute(&mut *tx).await?;
                }
                let (owners, planned) = plan_deliveries(&users, plans);
                let created = insert_deliveries!(tx, planned);
                tx.commit().await?;
                Ok(outcomes(&found, &refused, &owners, &planned, &created))
            }
            Store::Postgres(pool) => {
                // A few statements for the whole batch: hold the apps'
                // users, resolve users, find the known names, insert.
                let (distinct, which) = distinct_user_refs(batch);
                let (rows, mut ids) = rows_needed(&which, &plans, distinct.len());
                let mut resolved: Vec<Option<EventUser>> = vec![None; distinct.len()];
                let apps: Vec<&str> = distinct.iter().map(|d| d.0).collect();
                let mut tx = pool.begin().await?;
                // The apps' users held until the commit (`users_guard`):
                // one shared lock per app, not a lock on each user's row.
                if let Some(guard) = self.users_guard(false) {
                    sqlx::query(guard).bind(&apps).execute(&mut *tx).await?;
                }
                // Read under the apps' guard: no user of theirs is deleted
                // until the commit.
                if remembering {
                    let epoch: i64 = sqlx::query_scalar(USER_EPOCH).fetch_one(&mut *tx).await?;
                    lock(known).recall(epoch, &distinct, &mut ids, &mut resolved);
                }
                // One statement for the users whose rows a plan decides on;
                // one for the rest, of whom only the id is needed: two index
                // lookups each (murmur's id first, then the userId), no sort.
                if !rows.is_empty() {
                    let (apps, refs): (Vec<&str>, Vec<&str>) = rows.iter().map(|&d| distinct[d]).unzip();
                    let sql = format!(
                        "SELECT j.ord AS ord, {cols} FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS j(app_id, user_ref, ord) \
                         JOIN LATERAL (SELECT * FROM app_users x WHERE x.app_id = j.app_id AND (x.user_id = j.user_ref OR x.id = j.user_ref) ORDER BY (x.id = j.user_ref) DESC LIMIT 1) u ON TRUE"
                    );
                    for row in sqlx::query(&sql).bind(&apps).bind(&refs).fetch_all(&mut *tx).await? {
                        let ord: i64 = sqlx::Row::try_get(&row, "ord")?;
                        let user = <AppUserRow as sqlx::FromRow<_>>::from_row(&row)?;
                        resolved[rows[(ord - 1) as usize]] = Some(EventUser::Row(Box::new(user)));
                    }
                }
                if !ids.is_empty() {
                    let (apps, refs): (Vec<&str>, Vec<&str>) = ids.iter().map(|&d| distinct[d]).unzip();
                    let found: Vec<(i64, Option<String>)> = sqlx::query_as(
                        "SELECT j.ord, COALESCE( \
                           (SELECT x.id FROM app_users x WHERE x.app_id = j.app_id AND x.id = j.user_ref), \
                           (SELECT x.id FROM app_users x WHERE x.app_id = j.app_id AND x.user_id = j.user_ref)) \
                         FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS j(app_id, user_ref, ord)",
                    )
                    .bind(&apps)
                    .bind(&refs)
                    .fetch_all(&mut *tx)
                    .await?;
                    for (ord, id) in found {
                        resolved[ids[(ord - 1) as usize]] = id.map(EventUser::Id);
                    }
                }
                if remembering {
                    lock(known).remember_found(&distinct, rows.iter().chain(&ids), &resolved);
                }
                for (user, &d) in users.iter_mut().zip(&which) {
                    user.clone_from(&resolved[d]);
                }
                let found: Vec<bool> = users.iter().map(Option::is_some).collect();
                let (c_app, c_name): (Vec<String>, Vec<String>) =
                    catalog_names(batch, &found).into_iter().map(|(a, n)| (a.to_string(), n.to_string())).unzip();
                let known: std::collections::HashSet<(String, String)> = sqlx::query_as(
                    "SELECT c.app_id, c.name FROM event_catalog c \
                     JOIN unnest($1::text[], $2::text[]) AS x(a, n) ON c.app_id = x.a AND c.name = x.n",
                )
                .bind(&c_app)
                .bind(&c_name)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
                let refused = admit_events!(tx, batch, users, known);
                let (mut ins_app, mut ins_user, mut ins_name, mut ins_at) = (vec![], vec![], vec![], vec![]);
                let mut ins_props: Vec<Option<String>> = vec![];
                for (e, user) in batch.iter().zip(&users) {
                    let Some(user) = user else { continue };
                    ins_app.push(e.app_id.clone());
                    ins_user.push(user.id().to_string());
                    ins_name.push(e.name.clone());
                    ins_at.push(e.at);
                    ins_props.push(e.properties.clone());
                }
                sqlx::query(
                    "INSERT INTO events (app_id, app_user_id, name, created_at, properties) \
                     SELECT a, u, n, t, p::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[]) AS x(a, u, n, t, p)",
                )
                .bind(&ins_app)
                .bind(&ins_user)
                .bind(&ins_name)
                .bind(&ins_at)
                .bind(&ins_props)
                .execute(&mut *tx)
                .await?;
                let (owners, planned) = plan_deliveries(&users, plans);
                let created = insert_deliveries!(tx, planned);
                tx.commit().await?;
                Ok(outcomes(&found, &refused, &owners, &planned, &created))
            }
        }
    }
}

/// The users' epoch (migration 0023).
const USER_EPOCH: &str = "SELECT n FROM user_epoch WHERE id = 1";

/// `known`, whether or not a writer panicked while holding it (what it
/// holds is whole between statements).
pub(crate) fn lock(known: &std::sync::Mutex<UserIds>) -> std::sync::MutexGuard<'_, UserIds> {
    known.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the writers remember of the users they found by userId: per app,
/// userId → murmur id, so that a later batch's events of those users need
/// no lookup among the app's users (on SQLite three B-tree descents each,
/// the bulk of the one writer's work with users spread over a large table:
/// BENCHMARKS.md). A userId keeps naming the same user until that user is
/// deleted or renamed, or a user is added whose murmur id is that userId;
/// each of those moves the users' epoch (migration 0023), and what was
/// remembered under another epoch is forgotten. At most `capacity`
/// entries (none at 0): past it, all is forgotten and refilled.
pub struct UserIds {
    epoch: Option<i64>,
    apps: std::collections::HashMap<Box<str>, std::collections::HashMap<Box<str>, Box<str>>>,
    len: usize,
    capacity: usize,
}

impl UserIds {
    pub fn new(capacity: usize) -> UserIds {
        UserIds { epoch: None, apps: Default::default(), len: 0, capacity }
    }

    /// How many userIds are remembered.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes what `Store::user_ids` read, unless it is older than what is
    /// remembered (the epoch only grows); under the same epoch, what was
    /// read replaces what was found meanwhile (found again if needed).
    /// Returns what was dropped, to be freed outside the writers' lock.
    pub fn adopt(&mut self, loaded: UserIds) -> UserIds {
        let newer = match (self.epoch, loaded.epoch) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(mine), Some(read)) => read >= mine,
        };
        if newer {
            std::mem::replace(self, loaded)
        } else {
            loaded
        }
    }

    fn forget(&mut self) {
        self.apps.clear();
        self.len = 0;
    }

    /// The users' epoch read in the current transaction.
    fn under(&mut self, epoch: i64) {
        if self.epoch != Some(epoch) {
            self.forget();
            self.epoch = Some(epoch);
        }
    }

    fn get(&self, app_id: &str, user_id: &str) -> Option<&str> {
        self.apps.get(app_id)?.get(user_id).map(|id| &**id)
    }

    /// Under the users' `epoch`, read in the batch's transaction: takes out
    /// of `ids` (indexes into `distinct`, the batch's (app, reference)
    /// pairs) those remembered, resolved.
    fn recall(
        &mut self,
        epoch: i64,
        distinct: &[(&str, &str)],
        ids: &mut Vec<usize>,
        resolved: &mut [Option<EventUser>],
    ) {
        self.under(epoch);
        ids.retain(|&d| match self.get(distinct[d].0, distinct[d].1) {
            Some(id) => {
                resolved[d] = Some(EventUser::Id(id.to_string()));
                false
            }
            None => true,
        });
    }

    /// Remembers, of the references `looked_up` (indexes into `distinct`),
    /// the users found by their userId: a reference resolved to another id
    /// (a murmur id resolves to itself).
    fn remember_found<'a>(
        &mut self,
        distinct: &[(&str, &str)],
        looked_up: impl Iterator<Item = &'a usize>,
        resolved: &[Option<EventUser>],
    ) {
        for &d in looked_up {
            let (app_id, user_ref) = distinct[d];
            if let Some(user) = resolved[d].as_ref().filter(|u| u.id() != user_ref) {
                self.remember(app_id, user_ref, user.id());
            }
        }
    }

    fn remember(&mut self, app_id: &str, user_id: &str, id: &str) {
        if self.capacity == 0 || self.epoch.is_none() {
            return;
        }
        if self.len >= self.capacity {
            self.forget();
        }
        let app = match self.apps.get_mut(app_id) {
            Some(app) => app,
            None => self.apps.entry(app_id.into()).or_default(),
        };
        if !app.contains_key(user_id) {
            app.insert(user_id.into(), id.into());
            self.len += 1;
        }
    }
}

/// A tracked event's user, as far as its write needs them: the whole row
/// when the event has a plan (which decides on it), else only the id.
#[derive(Debug, Clone)]
enum EventUser {
    Id(String),
    Row(Box<AppUserRow>),
}

impl EventUser {
    fn id(&self) -> &str {
        match self {
            EventUser::Id(id) => id,
            EventUser::Row(row) => &row.id,
        }
    }
}

/// The distinct users of a batch (`which` gives each event's), split in
/// two: those with an event that has a plan (their whole rows are read),
/// and the rest (only their ids).
fn rows_needed(which: &[usize], plans: &[Option<DeliveryPlan>], distinct: usize) -> (Vec<usize>, Vec<usize>) {
    let mut whole = vec![false; distinct];
    for (&d, plan) in which.iter().zip(plans) {
        whole[d] |= plan.is_some();
    }
    (0..distinct).partition(|&d| whole[d])
}

/// SQLite: the `VALUES` rows `(ord, ?, ?)` of a chunk of a batch's
/// distinct users (each row's `ord` its index among them).
fn ord_values(chunk: &[usize]) -> String {
    chunk.iter().map(|d| format!("({d}, ?, ?)")).collect::<Vec<_>>().join(", ")
}

/// Runs each written event's plan: the deliveries, and for each the index
/// of the event it belongs to. An event with a plan has its user's row
/// (`rows_needed`).
fn plan_deliveries(users: &[Option<EventUser>], plans: Vec<Option<DeliveryPlan>>) -> (Vec<usize>, Vec<NewDelivery>) {
    let mut out = (vec![], vec![]);
    for (i, (user, plan)) in users.iter().zip(plans).enumerate() {
        if let (Some(EventUser::Row(user)), Some(plan)) = (user, plan) {
            for d in plan(user) {
                out.0.push(i);
                out.1.push(d);
            }
        }
    }
    out
}

/// Per event: whether its user was found, whether the catalog refused it,
/// and its deliveries that were created.
fn outcomes(
    found: &[bool],
    refused: &[bool],
    owners: &[usize],
    planned: &[NewDelivery],
    created: &std::collections::HashSet<String>,
) -> Vec<Tracked> {
    let mut out: Vec<Tracked> = found
        .iter()
        .zip(refused)
        .map(|(&found, &catalog_full)| Tracked { found, catalog_full, delivered: vec![] })
        .collect();
    for (&i, d) in owners.iter().zip(planned) {
        if created.contains(&d.id) {
            out[i].delivered.push(d.row());
        }
    }
    out
}

/// The batch's distinct (app, user ref) pairs, and for each event the index
/// of its pair: a batch of a few busy users' events reads each user once.
fn distinct_user_refs(batch: &[PendingEvent]) -> (Vec<(&str, &str)>, Vec<usize>) {
    let mut index: std::collections::HashMap<(&str, &str), usize> = std::collections::HashMap::new();
    let mut distinct = vec![];
    let which = batch
        .iter()
        .map(|e| {
            let key = (e.app_id.as_str(), e.user_ref.as_str());
            *index.entry(key).or_insert_with(|| {
                distinct.push(key);
                distinct.len() - 1
            })
        })
        .collect();
    (distinct, which)
}

/// Distinct (app, event name) pairs among the found events of a batch.
fn catalog_names<'a>(batch: &'a [PendingEvent], found: &[bool]) -> Vec<(&'a str, &'a str)> {
    let mut seen = std::collections::HashSet::new();
    batch
        .iter()
        .zip(found)
        .filter(|(e, ok)| **ok && seen.insert((e.app_id.as_str(), e.name.as_str())))
        .map(|(e, _)| (e.app_id.as_str(), e.name.as_str()))
        .collect()
}
