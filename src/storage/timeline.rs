//! A user's timeline: every event, whisper card, manual-message delivery
//! (pending ones included), conversation message, conversation start and
//! conversation change, newest first, one page at a time.
//!
//! Each source is read by its own keyset query from an index on (user,
//! time, id) — at most a page plus one row each — and the rows are merged
//! here. The order is (time, kind, id), all descending; the kind breaks
//! ties between sources at the same millisecond (a card above the event
//! that caused it, a message above the conversation it started). A cursor
//! is the last item's (time, kind, id); for a source the next page starts
//! at `(time, id) < bound`, where the bound is (time, id) for the cursor's
//! own kind, (time + 1, lowest id) for kinds below it (rows at the same
//! time come later in the order) and (time, lowest id) for kinds above.

use std::cmp::Ordering;

use super::{with_pool, Store, StoreResult};

/// The sources of a timeline, in their tie-breaking order (lowest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimelineKind {
    /// A conversation started.
    Conversation,
    Event,
    Message,
    /// A whisper's card.
    Card,
    /// A manual message's delivery.
    Manual,
    /// A conversation closed, reopened, assigned or unassigned.
    Change,
}

impl TimelineKind {
    pub const ALL: [TimelineKind; 6] = [
        TimelineKind::Conversation,
        TimelineKind::Event,
        TimelineKind::Message,
        TimelineKind::Card,
        TimelineKind::Manual,
        TimelineKind::Change,
    ];

    pub fn code(self) -> &'static str {
        match self {
            TimelineKind::Conversation => "conversation",
            TimelineKind::Event => "event",
            TimelineKind::Message => "message",
            TimelineKind::Card => "card",
            TimelineKind::Manual => "manual",
            TimelineKind::Change => "change",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// Where a page ends: the last item's time, kind and id. As text,
/// `time:kind:id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineCursor {
    pub at: i64,
    pub kind: TimelineKind,
    pub id: String,
}

impl TimelineCursor {
    pub fn encode(&self) -> String {
        format!("{}:{}:{}", self.at, self.kind.code(), self.id)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let mut parts = s.splitn(3, ':');
        let at = parts.next()?.parse().ok()?;
        let kind = TimelineKind::parse(parts.next()?)?;
        let id = parts.next()?.to_string();
        Some(TimelineCursor { at, kind, id })
    }
}

/// A whisper card as the team sees it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TimelineCard {
    pub id: String,
    pub whisper_id: String,
    pub whisper_name: String,
    pub state: String,
    /// The card as delivered (JSON).
    pub rendered: String,
    pub sent_at: Option<i64>,
    pub seen_at: Option<i64>,
    pub clicked_at: Option<i64>,
    pub replied_at: Option<i64>,
    pub recalled_at: Option<i64>,
    pub recalled_by: Option<String>,
    pub sent_via: Option<String>,
    pub created_at: i64,
}

/// A manual message's delivery to the user.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TimelineManual {
    pub id: String,
    pub message_id: String,
    pub title: String,
    /// The message's kind: chat, announcement or email.
    pub kind: String,
    /// The message's body (a template), for a card not rendered yet.
    pub body: String,
    pub channel: String,
    pub state: String,
    /// The card as delivered (in-app, once sent).
    pub rendered: Option<String>,
    pub sent_at: Option<i64>,
    pub seen_at: Option<i64>,
    pub clicked_at: Option<i64>,
    pub replied_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub recalled_at: Option<i64>,
    pub recalled_by: Option<String>,
    pub sent_via: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TimelineEvent {
    pub id: i64,
    pub name: String,
    /// Its properties as JSON text.
    pub properties: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TimelineMessage {
    pub id: String,
    /// `appUser` or `appMaker`.
    pub role: String,
    pub name: Option<String>,
    pub text: String,
    pub conversation_id: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TimelineConversation {
    pub id: String,
    /// `user`, `teammate` or `card`.
    pub started_by: String,
    pub starter_name: Option<String>,
    pub card_id: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TimelineChange {
    pub id: i64,
    pub conversation_id: String,
    /// `closed`, `reopened`, `assigned` or `unassigned`.
    pub change: String,
    pub assignee_name: Option<String>,
    /// `team` or `user`.
    pub by_whom: String,
    pub at: i64,
}

/// One item of a timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimelineItem {
    Conversation(TimelineConversation),
    Event(TimelineEvent),
    Message(TimelineMessage),
    Card(TimelineCard),
    Manual(TimelineManual),
    Change(TimelineChange),
}

impl TimelineItem {
    pub fn kind(&self) -> TimelineKind {
        match self {
            TimelineItem::Conversation(_) => TimelineKind::Conversation,
            TimelineItem::Event(_) => TimelineKind::Event,
            TimelineItem::Message(_) => TimelineKind::Message,
            TimelineItem::Card(_) => TimelineKind::Card,
            TimelineItem::Manual(_) => TimelineKind::Manual,
            TimelineItem::Change(_) => TimelineKind::Change,
        }
    }

    pub fn at(&self) -> i64 {
        match self {
            TimelineItem::Conversation(c) => c.created_at,
            TimelineItem::Event(e) => e.created_at,
            TimelineItem::Message(m) => m.created_at,
            TimelineItem::Card(c) => c.created_at,
            TimelineItem::Manual(m) => m.created_at,
            TimelineItem::Change(c) => c.at,
        }
    }

    /// The id, as the cursor carries it.
    pub fn id(&self) -> String {
        match self {
            TimelineItem::Conversation(c) => c.id.clone(),
            TimelineItem::Event(e) => e.id.to_string(),
            TimelineItem::Message(m) => m.id.clone(),
            TimelineItem::Card(c) => c.id.clone(),
            TimelineItem::Manual(m) => m.id.clone(),
            TimelineItem::Change(c) => c.id.to_string(),
        }
    }

    pub fn cursor(&self) -> TimelineCursor {
        TimelineCursor { at: self.at(), kind: self.kind(), id: self.id() }
    }

    /// The timeline's order: newest first, then kind, then id (numbers as
    /// numbers), all descending.
    fn newest_first(a: &TimelineItem, b: &TimelineItem) -> Ordering {
        let key = |i: &TimelineItem| (i.at(), i.kind());
        key(b).cmp(&key(a)).then_with(|| match (a, b) {
            (TimelineItem::Event(x), TimelineItem::Event(y)) => y.id.cmp(&x.id),
            (TimelineItem::Change(x), TimelineItem::Change(y)) => y.id.cmp(&x.id),
            _ => b.id().cmp(&a.id()),
        })
    }
}

/// One page of a timeline, and where the next starts (`None`: the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelinePage {
    pub items: Vec<TimelineItem>,
    pub next: Option<TimelineCursor>,
}

/// A source's bound `(time, id) < (at, id)` for the page after `cursor`.
fn bound<I>(kind: TimelineKind, cursor: Option<&TimelineCursor>, lowest: I, own: impl Fn(&str) -> I) -> (i64, I) {
    match cursor {
        None => (i64::MAX, lowest),
        Some(c) => match kind.cmp(&c.kind) {
            Ordering::Equal => (c.at, own(&c.id)),
            // Lower kinds at the cursor's time come after it.
            Ordering::Less => (c.at.saturating_add(1), lowest),
            Ordering::Greater => (c.at, lowest),
        },
    }
}

impl Store {
    /// A page of the timeline of user `app_user_id` of app `app_id` (their
    /// murmur id), after `before`. `None` if the app has no such user.
    pub async fn timeline(
        &self,
        app_id: &str,
        app_user_id: &str,
        before: Option<&TimelineCursor>,
        limit: i64,
    ) -> StoreResult<Option<TimelinePage>> {
        let limit = limit.max(1);
        let n = limit + 1;
        let known: Option<String> = with_pool!(self, pool => sqlx::query_scalar(
            "SELECT id FROM app_users WHERE id = $1 AND app_id = $2",
        )
        .bind(app_user_id)
        .bind(app_id)
        .fetch_optional(pool)
        .await?);
        if known.is_none() {
            return Ok(None);
        }
        let text_bound = |k| bound(k, before, String::new(), str::to_string);
        // An id that does not parse cannot be this kind's: past every row at that time.
        let int_bound = |k| bound(k, before, i64::MIN, |s: &str| s.parse().unwrap_or(i64::MAX));
        let mut items: Vec<TimelineItem> = Vec::new();

        let (at, id) = int_bound(TimelineKind::Event);
        let sql = format!(
            "SELECT id, name, properties, created_at FROM {} ORDER BY created_at DESC, id DESC LIMIT $4",
            self.user_events_union("$1", "({at}, {id}) < ($2, $3)", Some("$4"))
        );
        let rows: Vec<TimelineEvent> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(app_user_id).bind(at).bind(id).bind(n).fetch_all(pool).await?);
        items.extend(rows.into_iter().map(TimelineItem::Event));

        let (at, id) = text_bound(TimelineKind::Card);
        let rows: Vec<TimelineCard> = with_pool!(self, pool => sqlx::query_as(
            "SELECT d.id, d.whisper_id, w.name AS whisper_name, d.state, d.rendered, d.sent_at, d.seen_at, \
             d.clicked_at, d.replied_at, d.recalled_at, d.recalled_by, d.sent_via, d.created_at \
             FROM deliveries d JOIN whispers w ON w.id = d.whisper_id \
             WHERE d.app_user_id = $1 AND (d.created_at, d.id) < ($2, $3) ORDER BY d.created_at DESC, d.id DESC LIMIT $4",
        )
        .bind(app_user_id).bind(at).bind(&id).bind(n).fetch_all(pool).await?);
        items.extend(rows.into_iter().map(TimelineItem::Card));

        let (at, id) = text_bound(TimelineKind::Manual);
        let rows: Vec<TimelineManual> = with_pool!(self, pool => sqlx::query_as(
            "SELECT d.id, d.message_id, m.title, m.kind, m.body, d.channel, d.state, d.rendered, d.sent_at, d.seen_at, \
             d.clicked_at, d.replied_at, d.failed_at, d.recalled_at, d.recalled_by, d.sent_via, d.error, d.created_at \
             FROM message_deliveries d JOIN manual_messages m ON m.id = d.message_id \
             WHERE d.app_user_id = $1 AND (d.created_at, d.id) < ($2, $3) ORDER BY d.created_at DESC, d.id DESC LIMIT $4",
        )
        .bind(app_user_id).bind(at).bind(&id).bind(n).fetch_all(pool).await?);
        items.extend(rows.into_iter().map(TimelineItem::Manual));

        let (at, id) = text_bound(TimelineKind::Message);
        let rows: Vec<TimelineMessage> = with_pool!(self, pool => sqlx::query_as(
            "SELECT id, role, name, text, conversation_id, created_at FROM messages \
             WHERE app_user_id = $1 AND (created_at, id) < ($2, $3) ORDER BY created_at DESC, id DESC LIMIT $4",
        )
        .bind(app_user_id).bind(at).bind(&id).bind(n).fetch_all(pool).await?);
        items.extend(rows.into_iter().map(TimelineItem::Message));

        let (at, id) = text_bound(TimelineKind::Conversation);
        let rows: Vec<TimelineConversation> = with_pool!(self, pool => sqlx::query_as(
            "SELECT c.id, c.started_by, t.name AS starter_name, c.card_id, c.created_at \
             FROM conversations c LEFT JOIN teammates t ON t.id = c.starter_id \
             WHERE c.app_user_id = $1 AND (c.created_at, c.id) < ($2, $3) ORDER BY c.created_at DESC, c.id DESC LIMIT $4",
        )
        .bind(app_user_id).bind(at).bind(&id).bind(n).fetch_all(pool).await?);
        items.extend(rows.into_iter().map(TimelineItem::Conversation));

        // Through the user's conversations (a handful), each read by
        // (conversation, time, id).
        let (at, id) = int_bound(TimelineKind::Change);
        let rows: Vec<TimelineChange> = with_pool!(self, pool => sqlx::query_as(
            "SELECT x.id, x.conversation_id, x.change, t.name AS assignee_name, x.by_whom, x.at \
             FROM conversation_changes x JOIN conversations c ON c.id = x.conversation_id \
             LEFT JOIN teammates t ON t.id = x.assignee_id \
             WHERE c.app_user_id = $1 AND (x.at, x.id) < ($2, $3) ORDER BY x.at DESC, x.id DESC LIMIT $4",
        )
        .bind(app_user_id).bind(at).bind(id).bind(n).fetch_all(pool).await?);
        items.extend(rows.into_iter().map(TimelineItem::Change));

        items.sort_by(TimelineItem::newest_first);
        let more = items.len() as i64 > limit;
        items.truncate(limit as usize);
        let next = if more { items.last().map(TimelineItem::cursor) } else { None };
        Ok(Some(TimelinePage { items, next }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back() {
        let c = TimelineCursor { at: 42, kind: TimelineKind::Manual, id: "m:1".into() };
        assert_eq!(TimelineCursor::decode(&c.encode()), Some(c));
        assert_eq!(TimelineCursor::decode("x:event:1"), None);
        assert_eq!(TimelineCursor::decode("1:nope:1"), None);
        assert_eq!(TimelineCursor::decode("1:event"), None);
    }

    #[test]
    fn bounds_follow_the_order() {
        let c = TimelineCursor { at: 10, kind: TimelineKind::Message, id: "b".into() };
        let own = |s: &str| s.to_string();
        assert_eq!(bound(TimelineKind::Message, Some(&c), String::new(), own), (10, "b".into()));
        assert_eq!(bound(TimelineKind::Event, Some(&c), String::new(), own), (11, String::new()));
        assert_eq!(bound(TimelineKind::Card, Some(&c), String::new(), own), (10, String::new()));
        assert_eq!(bound(TimelineKind::Card, None, String::new(), own), (i64::MAX, String::new()));
    }
}
