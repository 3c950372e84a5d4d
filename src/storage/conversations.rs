//! Conversations: threads between one user and the team (state, assignee,
//! who started them, unread counts), the inbox's lists and their messages.
//! A message joins its conversation inside the transaction that stores it
//! (`users::insert_messages_batch` calls `find_or_start_conversation!`).

use super::{users::USER_BY_REF, with_pool, MessageRow, Store, StoreResult};

/// The columns of `ConversationRow`, qualified with `c`.
pub(crate) const CONVERSATION_COLUMNS: &str = "c.id, c.app_id, c.app_user_id, c.state, c.assignee_id, c.started_by, \
     c.starter_id, c.card_id, c.last_activity_at, c.last_text, c.unread_team, c.unread_user, c.created_at";

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConversationRow {
    pub id: String,
    pub app_id: String,
    pub app_user_id: String,
    /// `open` or `closed`.
    pub state: String,
    pub assignee_id: Option<String>,
    /// `user`, `teammate` or `card`.
    pub started_by: String,
    /// The teammate who started it.
    pub starter_id: Option<String>,
    /// The card (a whisper's or a manual message's delivery) it answers.
    pub card_id: Option<String>,
    pub last_activity_at: i64,
    pub last_text: String,
    /// The user's messages the team has not read.
    pub unread_team: i64,
    /// The team's messages the user has not read.
    pub unread_user: i64,
    pub created_at: i64,
}

/// Where a message goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ConversationTarget {
    /// The conversation of the card it answers (started by it if none),
    /// else the user's newest open conversation, else a new one.
    #[default]
    Latest,
    /// This conversation (checked to be the user's).
    Given(String),
    /// A new conversation ("Start a conversation" on the profile).
    New,
}

/// How a message joins its conversation (see `PendingMessage`).
#[derive(Debug, Clone, Default)]
pub struct Joining {
    pub target: ConversationTarget,
    /// The card the message answers.
    pub card: Option<String>,
    /// The teammate writing (a team message from the dashboard).
    pub teammate: Option<String>,
    /// The id a new conversation gets.
    pub new_id: String,
}

/// Inside the open transaction `$tx`, the conversation a message of user
/// `$user_id` (role `$role`) joins per `$joining` (`&Joining`): found, or
/// started. Evaluates to `(ConversationRow, started)`.
macro_rules! find_or_start_conversation {
    ($tx:ident, $app_id:expr, $user_id:expr, $role:expr, $joining:expr, $now:expr) => {{
        use $crate::storage::conversations::{ConversationRow, ConversationTarget, CONVERSATION_COLUMNS};
        let j: &$crate::storage::conversations::Joining = $joining;
        let user_id: &str = $user_id;
        let from_user = $role == "appUser";
        let mut found: Option<ConversationRow> = None;
        match &j.target {
            ConversationTarget::Given(id) => {
                found = sqlx::query_as(&format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations c WHERE c.id = $1 AND c.app_user_id = $2"
                ))
                .bind(id)
                .bind(user_id)
                .fetch_optional(&mut *$tx)
                .await?;
            }
            ConversationTarget::New => {}
            ConversationTarget::Latest => {
                if let (Some(card), true) = (&j.card, from_user) {
                    found = sqlx::query_as(&format!(
                        "SELECT {CONVERSATION_COLUMNS} FROM conversations c WHERE c.app_user_id = $1 AND c.card_id = $2 \
                         ORDER BY c.created_at DESC LIMIT 1"
                    ))
                    .bind(user_id)
                    .bind(card)
                    .fetch_optional(&mut *$tx)
                    .await?;
                } else {
                    found = sqlx::query_as(&format!(
                        "SELECT {CONVERSATION_COLUMNS} FROM conversations c WHERE c.app_user_id = $1 AND c.state = 'open' \
                         ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 1"
                    ))
                    .bind(user_id)
                    .fetch_optional(&mut *$tx)
                    .await?;
                }
            }
        }
        match found {
            Some(c) => (c, false),
            None => {
                let card = if from_user { j.card.clone() } else { None };
                let (started_by, starter) = match (&card, from_user) {
                    (Some(_), _) => ("card", None),
                    (None, true) => ("user", None),
                    (None, false) => ("teammate", j.teammate.clone()),
                };
                // A conversation a teammate starts is theirs.
                let c = ConversationRow {
                    id: j.new_id.clone(),
                    app_id: $app_id.to_string(),
                    app_user_id: user_id.to_string(),
                    state: "open".into(),
                    assignee_id: starter.clone(),
                    started_by: started_by.into(),
                    starter_id: starter,
                    card_id: card,
                    last_activity_at: $now,
                    last_text: String::new(),
                    unread_team: 0,
                    unread_user: 0,
                    created_at: $now,
                };
                sqlx::query(
                    "INSERT INTO conversations (id, app_id, app_user_id, state, assignee_id, started_by, starter_id, \
                     card_id, last_activity_at, last_text, unread_team, unread_user, created_at) \
                     VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, $8, '', 0, 0, $8)",
                )
                .bind(&c.id)
                .bind(&c.app_id)
                .bind(&c.app_user_id)
                .bind(&c.assignee_id)
                .bind(&c.started_by)
                .bind(&c.starter_id)
                .bind(&c.card_id)
                .bind(c.created_at)
                .execute(&mut *$tx)
                .await?;
                (c, true)
            }
        }
    }};
}
pub(crate) use find_or_start_conversation;

/// Inside the open transaction `$tx`: conversation `$id` got message `$m`
/// (`&MessageRow`). A user's message reopens it and counts as unread for
/// the team; the team's counts as unread for the user, and with
/// `$team_read` (a teammate or the API wrote, not an automatic reply)
/// means the team has read the thread. Evaluates to the updated row.
macro_rules! touch_conversation {
    ($tx:ident, $id:expr, $m:expr, $team_read:expr) => {{
        let m: &$crate::storage::MessageRow = $m;
        let from_user = m.role == "appUser";
        if from_user {
            // A user's message reopens a closed conversation: recorded for the timeline.
            sqlx::query(
                "INSERT INTO conversation_changes (conversation_id, change, by_whom, at) \
                 SELECT id, 'reopened', 'user', $2 FROM conversations WHERE id = $1 AND state = 'closed'",
            )
            .bind($id)
            .bind(m.created_at)
            .execute(&mut *$tx)
            .await?;
        }
        let sql = format!(
            "UPDATE conversations SET last_activity_at = CASE WHEN last_activity_at > $2 THEN last_activity_at ELSE $2 END, \
             last_text = $3, \
             unread_team = CASE WHEN $4 THEN unread_team + 1 WHEN $5 THEN 0 ELSE unread_team END, \
             unread_user = CASE WHEN $4 THEN unread_user ELSE unread_user + 1 END, \
             state = CASE WHEN $4 THEN 'open' ELSE state END \
             WHERE id = $1 RETURNING {}",
            $crate::storage::conversations::CONVERSATION_COLUMNS.replace("c.", "")
        );
        let row: $crate::storage::conversations::ConversationRow = sqlx::query_as(&sql)
            .bind($id)
            .bind(m.created_at)
            .bind({
                // The list's preview: a user's words as typed, the team's without styling markers.
                let preview = if from_user { m.text.clone() } else { $crate::domain::conversation::team_preview(&m.text) };
                preview.chars().take(200).collect::<String>()
            })
            .bind(from_user)
            .bind($team_read)
            .fetch_one(&mut *$tx)
            .await?;
        row
    }};
}
pub(crate) use touch_conversation;

/// Whose conversations an inbox list shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssigneeFilter {
    All,
    Unassigned,
    To(String),
}

/// One page of an inbox list, newest activity first, paged by keyset.
#[derive(Debug, Clone)]
pub struct InboxQuery<'a> {
    pub app_id: &'a str,
    pub state: &'a str,
    pub assignee: AssigneeFilter,
    /// Words in the user's name, email or userId, or in a message.
    pub search: &'a str,
    /// The last row of the previous page: (last activity, id).
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

/// An inbox row: the conversation and who it is with.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InboxRow {
    #[sqlx(flatten)]
    pub c: ConversationRow,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub user_id: Option<String>,
    pub email: Option<String>,
    pub assignee_name: Option<String>,
}

/// The conversation's message columns (`MessageRow`), qualified with `m`.
pub(crate) const MESSAGE_COLUMNS: &str = "m.id, m.role, m.name, m.text, m.created_at, m.conversation_id";

impl Store {
    /// One conversation of the app.
    pub async fn conversation(&self, app_id: &str, id: &str) -> StoreResult<Option<ConversationRow>> {
        let sql = format!("SELECT {CONVERSATION_COLUMNS} FROM conversations c WHERE c.id = $1 AND c.app_id = $2");
        Ok(with_pool!(self, pool => sqlx::query_as(&sql).bind(id).bind(app_id).fetch_optional(pool).await?))
    }

    /// A conversation of the user `user_ref` names in the app (their userId or murmur id).
    pub async fn user_conversation(
        &self,
        app_id: &str,
        user_ref: &str,
        id: &str,
    ) -> StoreResult<Option<ConversationRow>> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations c WHERE c.id = $3 AND c.app_id = $1 \
             AND c.app_user_id = {USER_BY_REF}"
        );
        Ok(
            with_pool!(self, pool => sqlx::query_as(&sql).bind(app_id).bind(user_ref).bind(id).fetch_optional(pool).await?),
        )
    }

    /// A user's conversations, newest activity first.
    pub async fn user_conversations(&self, app_user_id: &str, limit: i64) -> StoreResult<Vec<ConversationRow>> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations c WHERE c.app_user_id = $1 \
             ORDER BY c.last_activity_at DESC, c.id DESC LIMIT $2"
        );
        Ok(with_pool!(self, pool => sqlx::query_as(&sql).bind(app_user_id).bind(limit).fetch_all(pool).await?))
    }

    /// The conversations a teammate started or is assigned, in an app, newest activity first.
    pub async fn teammate_conversations(
        &self,
        app_id: &str,
        teammate_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<InboxRow>> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS}, u.given_name, u.surname, u.user_id, u.email, t.name AS assignee_name \
             FROM conversations c JOIN app_users u ON u.id = c.app_user_id LEFT JOIN teammates t ON t.id = c.assignee_id \
             WHERE c.app_id = $1 AND (c.assignee_id = $2 OR c.starter_id = $2) \
             ORDER BY c.last_activity_at DESC, c.id DESC LIMIT $3"
        );
        Ok(
            with_pool!(self, pool => sqlx::query_as(&sql).bind(app_id).bind(teammate_id).bind(limit).fetch_all(pool).await?),
        )
    }

    /// A conversation's messages, oldest first, the last `limit`.
    pub async fn conversation_messages(&self, conversation_id: &str, limit: i64) -> StoreResult<Vec<MessageRow>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.conversation_id = $1 \
             ORDER BY m.created_at DESC, m.id DESC LIMIT $2"
        );
        let mut rows: Vec<MessageRow> =
            with_pool!(self, pool => sqlx::query_as(&sql).bind(conversation_id).bind(limit).fetch_all(pool).await?);
        rows.reverse();
        Ok(rows)
    }

    /// One page of an inbox list.
    pub async fn inbox(&self, q: &InboxQuery<'_>) -> StoreResult<Vec<InboxRow>> {
        let mut sql = format!(
            "SELECT {CONVERSATION_COLUMNS}, u.given_name, u.surname, u.user_id, u.email, t.name AS assignee_name \
             FROM conversations c JOIN app_users u ON u.id = c.app_user_id LEFT JOIN teammates t ON t.id = c.assignee_id \
             WHERE c.app_id = $1 AND c.state = $2"
        );
        let mut texts: Vec<String> = vec![];
        let mut n = 3;
        match &q.assignee {
            AssigneeFilter::All => {}
            AssigneeFilter::Unassigned => sql.push_str(" AND c.assignee_id IS NULL"),
            AssigneeFilter::To(id) => {
                sql.push_str(&format!(" AND c.assignee_id = ${n}"));
                texts.push(id.clone());
                n += 1;
            }
        }
        let search = q.search.trim();
        if !search.is_empty() {
            let (find, p) = match self {
                Store::Sqlite(_) => ("instr", format!("lower(${n})")),
                Store::Postgres(_) => ("strpos", format!("lower(${n}::text)")),
            };
            sql.push_str(&format!(
                " AND ({find}(lower(COALESCE(u.given_name, '') || ' ' || COALESCE(u.surname, '')), {p}) > 0 \
                 OR {find}(lower(COALESCE(u.email, '')), {p}) > 0 OR {find}(lower(COALESCE(u.user_id, '')), {p}) > 0 \
                 OR EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND {find}(lower(m.text), {p}) > 0))"
            ));
            texts.push(search.to_string());
            n += 1;
        }
        let before = q.before.clone();
        if before.is_some() {
            sql.push_str(&format!(
                " AND (c.last_activity_at < ${n} OR (c.last_activity_at = ${n} AND c.id < ${}))",
                n + 1
            ));
            n += 2;
        }
        sql.push_str(&format!(" ORDER BY c.last_activity_at DESC, c.id DESC LIMIT ${n}"));
        Ok(with_pool!(self, pool => {
            let mut query = sqlx::query_as::<_, InboxRow>(&sql).bind(q.app_id).bind(q.state);
            for t in &texts {
                query = query.bind(t);
            }
            if let Some((at, id)) = before {
                query = query.bind(at).bind(id);
            }
            query.bind(q.limit).fetch_all(pool).await?
        }))
    }

    /// How many open conversations the app has: all, unassigned, assigned to `teammate_id`.
    pub async fn inbox_counts(&self, app_id: &str, teammate_id: &str) -> StoreResult<(i64, i64, i64)> {
        // Three counts, each read from an index alone (no row is visited):
        // `conversations_inbox` for all, `conversations_assignee` for the others.
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM conversations WHERE app_id = $1 AND state = 'open'), \
             (SELECT COUNT(*) FROM conversations WHERE app_id = $1 AND assignee_id IS NULL AND state = 'open'), \
             (SELECT COUNT(*) FROM conversations WHERE app_id = $1 AND assignee_id = $2 AND state = 'open')",
        )
        .bind(app_id)
        .bind(teammate_id)
        .fetch_one(pool)
        .await?))
    }

    /// Opens or closes a conversation of the app; the updated row. A real
    /// change is recorded (`conversation_changes`, for the user's timeline)
    /// in the same transaction.
    pub async fn set_conversation_state(
        &self,
        app_id: &str,
        id: &str,
        open: bool,
        now: i64,
    ) -> StoreResult<Option<ConversationRow>> {
        let state = if open { "open" } else { "closed" };
        let change = if open { "reopened" } else { "closed" };
        self.change_conversation(app_id, id, "state = $3", "state <> $3", Some(state), change, None, now).await
    }

    /// Assigns a conversation of the app to a teammate (or nobody); the
    /// updated row. A real change is recorded like a state change.
    pub async fn assign_conversation(
        &self,
        app_id: &str,
        id: &str,
        teammate_id: Option<&str>,
        now: i64,
    ) -> StoreResult<Option<ConversationRow>> {
        let change = if teammate_id.is_some() { "assigned" } else { "unassigned" };
        self.change_conversation(
            app_id,
            id,
            "assignee_id = $3",
            "assignee_id IS DISTINCT FROM $3",
            teammate_id,
            change,
            teammate_id,
            now,
        )
        .await
    }

    /// `UPDATE conversations SET {set}` where `{differs}` (both about `$3`
    /// = `value`), and the change row when it changed anything; else the
    /// row as it is. `None` if the app has no such conversation.
    #[allow(clippy::too_many_arguments)]
    async fn change_conversation(
        &self,
        app_id: &str,
        id: &str,
        set: &str,
        differs: &str,
        value: Option<&str>,
        change: &str,
        assignee: Option<&str>,
        now: i64,
    ) -> StoreResult<Option<ConversationRow>> {
        let columns = CONVERSATION_COLUMNS.replace("c.", "");
        let update =
            format!("UPDATE conversations SET {set} WHERE id = $1 AND app_id = $2 AND {differs} RETURNING {columns}");
        let select = format!("SELECT {columns} FROM conversations WHERE id = $1 AND app_id = $2");
        Ok(with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // The row lock of the UPDATE orders concurrent changes: the
            // second sees the first's value and changes (and records) nothing.
            let changed: Option<ConversationRow> =
                sqlx::query_as(&update).bind(id).bind(app_id).bind(value).fetch_optional(&mut *tx).await?;
            let row = match changed {
                Some(row) => {
                    sqlx::query(
                        "INSERT INTO conversation_changes (conversation_id, change, assignee_id, by_whom, at) \
                         VALUES ($1, $2, $3, 'team', $4)",
                    )
                    .bind(id)
                    .bind(change)
                    .bind(assignee)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    Some(row)
                }
                None => sqlx::query_as(&select).bind(id).bind(app_id).fetch_optional(&mut *tx).await?,
            };
            tx.commit().await?;
            row
        }))
    }

    /// The team read a conversation. True if it had unread messages.
    pub async fn conversation_read_by_team(&self, app_id: &str, id: &str) -> StoreResult<bool> {
        Ok(with_pool!(self, pool => sqlx::query(
            "UPDATE conversations SET unread_team = 0 WHERE id = $1 AND app_id = $2 AND unread_team > 0",
        )
        .bind(id)
        .bind(app_id)
        .execute(pool)
        .await?
        .rows_affected())
            > 0)
    }

    /// The user read a conversation of theirs.
    pub async fn conversation_read_by_user(&self, app_user_id: &str, id: &str) -> StoreResult<bool> {
        Ok(with_pool!(self, pool => sqlx::query(
            "UPDATE conversations SET unread_user = 0 WHERE id = $1 AND app_user_id = $2 AND unread_user > 0",
        )
        .bind(id)
        .bind(app_user_id)
        .execute(pool)
        .await?
        .rows_affected())
            > 0)
    }

    /// A card's rendered JSON and time, for the conversation it started: a
    /// whisper's delivery or a manual message's (`m…`), if it is the user's.
    pub async fn card_of(&self, app_user_id: &str, delivery_id: &str) -> StoreResult<Option<(String, i64)>> {
        let sql = if delivery_id.starts_with('m') {
            "SELECT COALESCE(rendered, ''), COALESCE(sent_at, created_at) FROM message_deliveries WHERE id = $1 AND app_user_id = $2"
        } else {
            "SELECT rendered, created_at FROM deliveries WHERE id = $1 AND app_user_id = $2"
        };
        Ok(
            with_pool!(self, pool => sqlx::query_as(sql).bind(delivery_id).bind(app_user_id).fetch_optional(pool).await?),
        )
    }

    /// The conversations started by answering a manual message's cards, by user.
    pub async fn manual_conversations(&self, app_id: &str, message_id: &str) -> StoreResult<Vec<(String, String)>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT c.app_user_id, c.id FROM conversations c JOIN message_deliveries d ON d.id = c.card_id \
             WHERE c.app_id = $1 AND d.message_id = $2 ORDER BY c.created_at",
        )
        .bind(app_id)
        .bind(message_id)
        .fetch_all(pool)
        .await?))
    }
}
