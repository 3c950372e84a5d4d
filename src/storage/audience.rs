//! The condition engine's SQL half: checked conditions compile to a WHERE
//! fragment over `app_users u`, with every value bound as a parameter
//! (never spliced into the SQL). Its results must equal the in-memory
//! evaluator's (`domain::conditions`); `tests/audience.rs` checks that on
//! both backends with random users and conditions.

use std::collections::HashMap;

use crate::domain::{
    conditions::{Checked, Target, Test, UserProps, DAY_MS},
    properties::{Builtin, PropType, Value},
};

use super::{with_pool, AppUserRow, Store, StoreResult};

/// Binds compiled parameters, in order, to a query of either backend.
macro_rules! bind_params {
    ($query:expr, $params:expr) => {{
        let mut q = $query;
        for p in $params {
            q = match p {
                Param::Text(s) => q.bind(s),
                Param::Real(x) => q.bind(x),
                Param::Int(i) => q.bind(i),
            };
        }
        q
    }};
}

#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(String),
    Real(f64),
    Int(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
}

/// Where a compiled condition reads its columns: `u` is `app_users` (every
/// column, custom properties from the JSON) or `user_filters` (the narrow
/// table of migration 0018, keyed by the app's number: the built-ins in
/// `FILTER_COLUMNS`, and each custom property that has a catalog slot from
/// its slot column).
#[derive(Debug, Clone, Copy)]
enum Source<'a> {
    Users,
    Filters(&'a HashMap<String, i64>),
}

/// The built-in columns `user_filters` carries.
const FILTER_COLUMNS: &[&str] = &["signed_up_at", "last_seen_at", "app_version_key", "platform"];

/// The column a built-in condition reads (versions compare through their
/// sortable key column).
fn builtin_column(c: &Checked, b: &Builtin) -> &'static str {
    if c.ty == PropType::Version {
        "app_version_key"
    } else {
        b.column
    }
}

/// Whether `user_filters` with these slots can answer every condition.
fn filters_cover(conditions: &[Checked], slots: &HashMap<String, i64>) -> bool {
    conditions.iter().all(|c| match &c.target {
        Target::Builtin(b) => FILTER_COLUMNS.contains(&builtin_column(c, b)),
        Target::Custom(name) => slots.contains_key(name),
    })
}

struct Compiler<'a> {
    dialect: Dialect,
    source: Source<'a>,
    params: Vec<Param>,
    /// Number of the first parameter this compiler may use.
    offset: usize,
}

impl Compiler<'_> {
    fn bind(&mut self, p: Param) -> String {
        let cast = match (&p, self.dialect) {
            (_, Dialect::Sqlite) => "",
            (Param::Text(_), Dialect::Postgres) => "::text",
            (Param::Real(_), Dialect::Postgres) => "::float8",
            (Param::Int(_), Dialect::Postgres) => "::bigint",
        };
        self.params.push(p);
        format!("${}{cast}", self.offset + self.params.len() - 1)
    }

    /// The SQL expression for the property a condition reads.
    fn value_expr(&mut self, c: &Checked) -> String {
        let cast = match (c.ty, self.dialect) {
            (_, Dialect::Sqlite) | (PropType::Text | PropType::Version, _) => "",
            (PropType::Number, Dialect::Postgres) => "::float8",
            (PropType::Date, Dialect::Postgres) => "::bigint",
            (PropType::Boolean, Dialect::Postgres) => "::boolean",
        };
        let name = match &c.target {
            Target::Builtin(b) => return format!("u.{}", builtin_column(c, b)),
            Target::Custom(name) => name,
        };
        if let Source::Filters(slots) = self.source {
            if let Some(slot) = slots.get(name) {
                // The slot holds what the JSON expression below gives.
                return format!("(u.p{slot}){cast}");
            }
        }
        match self.dialect {
            Dialect::Sqlite => {
                // Names are letters, digits, '_' and '-' (checked on write).
                let path = self.bind(Param::Text(format!("$.\"{name}\"")));
                format!("json_extract(u.properties, {path})")
            }
            Dialect::Postgres => {
                let key = self.bind(Param::Text(name.clone()));
                format!("(u.properties->>{key}){cast}")
            }
        }
    }

    fn condition(&mut self, c: &Checked, now: i64) -> String {
        let e = self.value_expr(c);
        let text = |s: &String| Param::Text(s.clone());
        match &c.test {
            Test::Set => format!("{e} IS NOT NULL"),
            Test::Unknown => format!("{e} IS NULL"),
            Test::TextIs(s) => format!("{e} = {}", self.bind(text(s))),
            Test::TextIsNot(s) => format!("({e} IS NULL OR {e} <> {})", self.bind(text(s))),
            Test::Contains(s) => match self.dialect {
                Dialect::Sqlite => format!("instr({e}, {}) > 0", self.bind(text(s))),
                Dialect::Postgres => format!("strpos({e}, {}) > 0", self.bind(text(s))),
            },
            Test::StartsWith(s) => {
                let p = self.bind(text(s));
                format!("substr({e}, 1, length({p})) = {p}")
            }
            Test::NumEq(x) => format!("{e} = {}", self.bind(Param::Real(*x))),
            Test::NumNe(x) => format!("({e} IS NULL OR {e} <> {})", self.bind(Param::Real(*x))),
            Test::NumLt(x) => format!("{e} < {}", self.bind(Param::Real(*x))),
            Test::NumGt(x) => format!("{e} > {}", self.bind(Param::Real(*x))),
            Test::OlderThanDays(d) => format!("{e} < {}", self.bind(Param::Int(now - d * DAY_MS))),
            Test::NewerThanDays(d) => format!("{e} > {}", self.bind(Param::Int(now - d * DAY_MS))),
            Test::ExactlyDays(d) => {
                let lo = self.bind(Param::Int(now - (d + 1) * DAY_MS));
                let hi = self.bind(Param::Int(now - d * DAY_MS));
                format!("({e} > {lo} AND {e} <= {hi})")
            }
            Test::Before(t) => format!("{e} < {}", self.bind(Param::Int(*t))),
            Test::AtOrAfter(t) => format!("{e} >= {}", self.bind(Param::Int(*t))),
            Test::True | Test::False => {
                let want = matches!(c.test, Test::True);
                match self.dialect {
                    Dialect::Sqlite => format!("{e} = {}", i32::from(want)),
                    Dialect::Postgres => format!("{e} = {want}"),
                }
            }
            Test::VerIs(v) => format!("{e} = {}", self.bind(Param::Text(v.sort_key()))),
            Test::VerIsNot(v) => format!("({e} IS NULL OR {e} <> {})", self.bind(Param::Text(v.sort_key()))),
            Test::VerLt(v) => format!("{e} < {}", self.bind(Param::Text(v.sort_key()))),
            Test::VerGt(v) => format!("{e} > {}", self.bind(Param::Text(v.sort_key()))),
        }
    }
}

/// A WHERE fragment (ANDed conditions, `TRUE` when empty) and its
/// parameters, numbered from `$first`.
pub struct Compiled {
    pub sql: String,
    pub params: Vec<Param>,
}

/// Where an audience query reads its users: the table (aliased `u`), the
/// test that keeps the app's users (`$1` is the app's id), and the
/// conditions compiled for it.
struct Scan {
    table: &'static str,
    app: &'static str,
    compiled: Compiled,
}

impl Store {
    /// Compiles conditions for this store's dialect, over `app_users u`.
    pub fn compile_conditions(&self, conditions: &[Checked], now: i64, first: usize) -> Compiled {
        self.compile_from(Source::Users, conditions, now, first)
    }

    fn compile_from(&self, source: Source<'_>, conditions: &[Checked], now: i64, first: usize) -> Compiled {
        let dialect = match self {
            Store::Sqlite(_) => Dialect::Sqlite,
            Store::Postgres(_) => Dialect::Postgres,
        };
        let mut c = Compiler { dialect, source, params: Vec::new(), offset: first };
        // Typed columns first: SQLite tests ANDed terms in order, so the
        // JSON of a row is read only if the cheap tests pass.
        let mut ordered: Vec<&Checked> = conditions.iter().collect();
        ordered.sort_by_key(|c| matches!(c.target, Target::Custom(_)));
        let parts: Vec<String> = ordered.into_iter().map(|cond| c.condition(cond, now)).collect();
        let sql = if parts.is_empty() { "1 = 1".to_string() } else { parts.join(" AND ") };
        Compiled { sql, params: c.params }
    }

    /// The narrowest table that answers these conditions for the app:
    /// `user_filters` when every condition reads a column or slot it has,
    /// else `app_users`. Each call compiles with `compile` (once per
    /// moment, for the forecast) so both tables share one compiler.
    async fn audience_scan(
        &self,
        app_id: &str,
        conditions: &[Checked],
        compile: impl Fn(&Store, Source<'_>) -> Compiled,
    ) -> StoreResult<Scan> {
        let custom = conditions.iter().any(|c| matches!(c.target, Target::Custom(_)));
        let slots: HashMap<String, i64> = if custom {
            with_pool!(self, pool => sqlx::query_as::<_, (String, i64)>(
                "SELECT name, CAST(slot AS BIGINT) FROM property_catalog WHERE app_id = $1 AND slot IS NOT NULL",
            )
            .bind(app_id)
            .fetch_all(pool)
            .await?)
            .into_iter()
            .collect()
        } else {
            HashMap::new()
        };
        Ok(if filters_cover(conditions, &slots) {
            Scan {
                table: "user_filters",
                app: "u.app_no = (SELECT no FROM apps WHERE id = $1)",
                compiled: compile(self, Source::Filters(&slots)),
            }
        } else {
            Scan { table: "app_users", app: "u.app_id = $1", compiled: compile(self, Source::Users) }
        })
    }

    /// How many of the app's users match all conditions at `now`.
    pub async fn count_audience(&self, app_id: &str, conditions: &[Checked], now: i64) -> StoreResult<i64> {
        let scan = self.audience_scan(app_id, conditions, |s, src| s.compile_from(src, conditions, now, 2)).await?;
        let sql = format!("SELECT COUNT(*) FROM {} u WHERE {} AND {}", scan.table, scan.app, scan.compiled.sql);
        Ok(with_pool!(self, pool => {
            bind_params!(sqlx::query_scalar::<_, i64>(&sql).bind(app_id), scan.compiled.params).fetch_one(pool).await?
        }))
    }

    /// How many users start matching in each of the next `days` days, as
    /// time alone passes: matching at the end of day d but not at the end
    /// of day d − 1. One scan of the app's users.
    pub async fn audience_forecast(
        &self,
        app_id: &str,
        conditions: &[Checked],
        now: i64,
        days: i64,
    ) -> StoreResult<Vec<i64>> {
        const DAY: i64 = 86_400_000;
        let scan = self
            .audience_scan(app_id, conditions, |s, src| {
                let mut params = Vec::new();
                let mut sets = Vec::new();
                for d in 0..=days {
                    let c = s.compile_from(src, conditions, now + d * DAY, 2 + params.len());
                    sets.push(c.sql);
                    params.extend(c.params);
                }
                let sums: Vec<String> = (1..sets.len())
                    .map(|d| {
                        format!(
                            "COALESCE(SUM(CASE WHEN ({}) AND NOT COALESCE(({}), FALSE) THEN 1 ELSE 0 END), 0)",
                            sets[d],
                            sets[d - 1]
                        )
                    })
                    .collect();
                Compiled { sql: sums.join(", "), params }
            })
            .await?;
        let sql = format!("SELECT {} FROM {} u WHERE {}", scan.compiled.sql, scan.table, scan.app);
        Ok(with_pool!(self, pool => {
            let row = bind_params!(sqlx::query(&sql).bind(app_id), scan.compiled.params).fetch_one(pool).await?;
            (0..days as usize).map(|i| sqlx::Row::try_get::<i64, _>(&row, i)).collect::<Result<Vec<i64>, _>>()?
        }))
    }

    /// The ids of the app's users who match, in id order.
    pub async fn audience_ids(&self, app_id: &str, conditions: &[Checked], now: i64) -> StoreResult<Vec<String>> {
        let scan = self.audience_scan(app_id, conditions, |s, src| s.compile_from(src, conditions, now, 2)).await?;
        let sql =
            format!("SELECT u.id FROM {} u WHERE {} AND {} ORDER BY u.id", scan.table, scan.app, scan.compiled.sql);
        Ok(with_pool!(self, pool => {
            bind_params!(sqlx::query_scalar::<_, String>(&sql).bind(app_id), scan.compiled.params).fetch_all(pool).await?
        }))
    }
}

/// A stored user seen through the app's catalog, for the in-memory
/// evaluator (custom dates are stored as milliseconds).
pub struct RowProps<'a> {
    pub row: &'a AppUserRow,
    pub types: &'a HashMap<String, PropType>,
}

impl RowProps<'_> {
    /// The user's values for personalised text (`domain::users::personal_values`).
    pub fn personal_values(&self) -> Vec<(String, String)> {
        crate::domain::users::personal_values(self, self.row.properties.0.keys())
    }
}

impl UserProps for RowProps<'_> {
    fn builtin(&self, b: &Builtin) -> Option<Value> {
        let u = self.row;
        match b.column {
            "signed_up_at" => Some(Value::Date(u.signed_up_at)),
            "last_seen_at" => u.last_seen_at.map(Value::Date),
            "app_version" => u.app_version.clone().map(Value::Text),
            "platform" => u.platform.clone().map(Value::Text),
            "given_name" => u.given_name.clone().map(Value::Text),
            "surname" => u.surname.clone().map(Value::Text),
            "email" => u.email.clone().map(Value::Text),
            "user_id" => u.user_id.clone().map(Value::Text),
            _ => None,
        }
    }

    fn custom(&self, name: &str) -> Option<Value> {
        let v = self.row.properties.0.get(name)?;
        Some(match (self.types.get(name)?, v) {
            (PropType::Date, v) => Value::Date(v.as_i64()?),
            (PropType::Number, v) => Value::Number(v.as_f64()?),
            (PropType::Boolean, v) => Value::Boolean(v.as_bool()?),
            (PropType::Text, v) => Value::Text(v.as_str()?.to_string()),
            (PropType::Version, _) => return None,
        })
    }
}

/// Columns the users list sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    SignedUp,
    LastSeen,
    Name,
    Email,
}

impl SortKey {
    pub fn parse(s: &str) -> SortKey {
        match s {
            "last_seen" => SortKey::LastSeen,
            "name" => SortKey::Name,
            "email" => SortKey::Email,
            _ => SortKey::SignedUp,
        }
    }
    fn expr(self) -> &'static str {
        match self {
            SortKey::SignedUp => "u.signed_up_at",
            SortKey::LastSeen => "COALESCE(u.last_seen_at, 0)",
            SortKey::Name => "COALESCE(u.given_name, '')",
            SortKey::Email => "COALESCE(u.email, '')",
        }
    }
    fn is_text(self) -> bool {
        matches!(self, SortKey::Name | SortKey::Email)
    }
    /// The sort value of a row, as the cursor carries it.
    pub fn value_of(self, u: &AppUserRow) -> String {
        match self {
            SortKey::SignedUp => u.signed_up_at.to_string(),
            SortKey::LastSeen => u.last_seen_at.unwrap_or(0).to_string(),
            SortKey::Name => u.given_name.clone().unwrap_or_default(),
            SortKey::Email => u.email.clone().unwrap_or_default(),
        }
    }
}

/// One page of the users list: filtered by conditions and a search over
/// name, email and userId, sorted, and paged by keyset (the last row's sort
/// value and id), so a page deep in a million users costs what the first does.
pub struct UserListQuery<'a> {
    pub app_id: &'a str,
    pub search: &'a str,
    pub conditions: &'a [Checked],
    pub now: i64,
    pub sort: SortKey,
    pub descending: bool,
    pub after: Option<(String, String)>,
    pub limit: i64,
}

impl Store {
    fn user_filter(&self, q: &UserListQuery<'_>) -> Compiled {
        let mut compiled = self.compile_conditions(q.conditions, q.now, 2);
        let search = q.search.trim();
        if !search.is_empty() {
            let n = 2 + compiled.params.len();
            let find = match self {
                Store::Sqlite(_) => "instr",
                Store::Postgres(_) => "strpos",
            };
            let p = match self {
                Store::Sqlite(_) => format!("lower(${n})"),
                Store::Postgres(_) => format!("lower(${n}::text)"),
            };
            compiled.sql.push_str(&format!(
                " AND ({find}(lower(COALESCE(u.given_name, '') || ' ' || COALESCE(u.surname, '')), {p}) > 0 \
                 OR {find}(lower(COALESCE(u.email, '')), {p}) > 0 OR {find}(lower(COALESCE(u.user_id, '')), {p}) > 0)"
            ));
            compiled.params.push(Param::Text(search.to_string()));
        }
        compiled
    }

    /// Users matching the list's filter and search (the live count).
    pub async fn count_users(&self, q: &UserListQuery<'_>) -> StoreResult<i64> {
        if q.search.trim().is_empty() {
            return self.count_audience(q.app_id, q.conditions, q.now).await;
        }
        let f = self.user_filter(q);
        let sql = format!("SELECT COUNT(*) FROM app_users u WHERE u.app_id = $1 AND {}", f.sql);
        Ok(with_pool!(self, pool => {
            bind_params!(sqlx::query_scalar::<_, i64>(&sql).bind(q.app_id), f.params).fetch_one(pool).await?
        }))
    }

    pub async fn list_users(&self, q: &UserListQuery<'_>) -> StoreResult<Vec<AppUserRow>> {
        let mut f = self.user_filter(q);
        let key = q.sort.expr();
        let (cmp, dir) = if q.descending { ("<", "DESC") } else { (">", "ASC") };
        if let Some((value, id)) = &q.after {
            let n = 2 + f.params.len();
            let pg = matches!(self, Store::Postgres(_));
            let (v, i) = if q.sort.is_text() {
                f.params.push(Param::Text(value.clone()));
                (format!("${n}{}", if pg { "::text" } else { "" }), n + 1)
            } else {
                f.params.push(Param::Int(value.parse().unwrap_or(0)));
                (format!("${n}{}", if pg { "::bigint" } else { "" }), n + 1)
            };
            f.params.push(Param::Text(id.clone()));
            let id_param = format!("${i}{}", if pg { "::text" } else { "" });
            f.sql.push_str(&format!(" AND ({key} {cmp} {v} OR ({key} = {v} AND u.id {cmp} {id_param}))"));
        }
        let sql = format!(
            "SELECT {} FROM app_users u WHERE u.app_id = $1 AND {} ORDER BY {key} {dir}, u.id {dir} LIMIT {}",
            self.user_columns(),
            f.sql,
            q.limit.clamp(1, 500)
        );
        Ok(with_pool!(self, pool => {
            bind_params!(sqlx::query_as::<_, AppUserRow>(&sql).bind(q.app_id), f.params).fetch_all(pool).await?
        }))
    }
}
