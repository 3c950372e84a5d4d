//! The one write service for what end users do, used alike by the REST API
//! (`api::appusers`) and the widget socket (`widget::socket`): track an
//! event, update a profile (or launch the app), post a message, report a
//! card seen / clicked / replied. Each takes validated domain values,
//! stores the fact and the deliveries it triggers in one transaction
//! (through the writer), publishes them after commit, and returns one typed
//! error.
//!
//! Who writes (`Author`) decides what a write may do: the customer's
//! backend anything the rules allow; the end user's widget never the app's
//! server-only properties and events, and, unless its userId was verified
//! with a JWT, no new property type (its new properties are stored on the
//! user, but the type is fixed by the first backend or verified write).
//! Every write is bounded by the app's catalog caps (`CatalogCaps`).

use serde_json::{json, Map, Value as Json};

use super::{writer::React, Engine};
use crate::{
    domain::{
        messages::{MessageText, Role},
        properties::{Value, Version, MAX_CUSTOM_PROPERTIES},
        users::{check_user_ref, Event, UserPatch},
        whisper::Trigger,
        Invalid,
    },
    storage::{
        new_id, AppUserChanges, AppUserRow, ConversationRow, ConversationTarget, DeliveryRow, Joining, MessageRow,
        PendingEvent, PendingMessage, PendingUpdate, Properties, Reaction, StoreError, UserWriteError,
    },
};

/// Why an end user's action was not done.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// Bad input: which field, and what to do.
    #[error("{}", .0.message)]
    Invalid(Invalid),
    #[error("no such user")]
    NoUser,
    /// The conversation named is not one of this user's.
    #[error("no such conversation")]
    NoConversation,
    #[error("property {name:?} is a {existing} property in this app")]
    TypeConflict { name: String, existing: String },
    #[error("a user can have at most {MAX_CUSTOM_PROPERTIES} custom properties")]
    TooManyProperties,
    /// The widget may not set this property or track this event: the app
    /// keeps it for its backend (Settings, "What the widget may set").
    #[error("{} {name:?} can only be {} by this app's backend (REST API), not from the widget", .kind.noun(), .kind.verb())]
    ServerOnly { kind: NameKind, name: String },
    /// A new name would take the app's catalog past its cap.
    #[error("this app has {max} {} names already, the most it may have: no new ones can be added", .kind.noun())]
    CatalogFull { kind: NameKind, max: i64 },
    #[error("a user with this userId exists")]
    Duplicate,
    /// The database failed (logged where it happened).
    #[error("{0}")]
    Failed(String),
}

impl ActionError {
    /// The error in words, as a sentence (for an API body or a widget frame).
    pub fn sentence(&self) -> String {
        let text = self.to_string();
        let mut chars = text.chars();
        chars.next().map(|c| c.to_uppercase().chain(chars).collect::<String>() + ".").unwrap_or_default()
    }
}

impl From<Invalid> for ActionError {
    fn from(e: Invalid) -> Self {
        ActionError::Invalid(e)
    }
}

impl From<StoreError> for ActionError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Duplicate => ActionError::Duplicate,
            e => ActionError::Failed(e.to_string()),
        }
    }
}

impl From<super::writer::WriteFailed> for ActionError {
    fn from(e: super::writer::WriteFailed) -> Self {
        ActionError::Failed(e.0.to_string())
    }
}

impl From<UserWriteError> for ActionError {
    fn from(e: UserWriteError) -> Self {
        match e {
            UserWriteError::TypeConflict { name, existing } => ActionError::TypeConflict { name, existing },
            UserWriteError::TooManyProperties => ActionError::TooManyProperties,
            UserWriteError::CatalogFull { max } => ActionError::CatalogFull { kind: NameKind::Property, max },
            UserWriteError::NotFound => ActionError::NoUser,
            UserWriteError::Duplicate => ActionError::Duplicate,
            UserWriteError::Store(e) => e.into(),
        }
    }
}

/// A property or an event, as a name a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Property,
    Event,
}

impl NameKind {
    fn noun(self) -> &'static str {
        match self {
            NameKind::Property => "property",
            NameKind::Event => "event",
        }
    }
    fn verb(self) -> &'static str {
        match self {
            NameKind::Property => "set",
            NameKind::Event => "tracked",
        }
    }
}

/// Per-app caps on the catalogs: how many property names and event names
/// an app may have (`MAX_PROPERTY_NAMES`, `MAX_EVENT_NAMES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogCaps {
    pub properties: i64,
    pub events: i64,
}

impl CatalogCaps {
    pub const DEFAULT: CatalogCaps = CatalogCaps { properties: 500, events: 1_000 };
}

impl Default for CatalogCaps {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Who writes an end user's data, which decides what the write may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Author {
    /// The customer's backend (REST API, API key), or murmur itself on the
    /// user's behalf (an email's signed unsubscribe link).
    Backend,
    /// The end user's widget: never the app's server-only properties and
    /// events. `verified`: its userId was proven with a JWT signed with the
    /// app's identity secret; only then may it fix a new property's type.
    Widget { verified: bool },
}

impl Author {
    /// May add a name to the property catalog, fixing its type.
    pub fn fixes_types(self) -> bool {
        !matches!(self, Author::Widget { verified: false })
    }
}

/// Who sends a profile update, which decides what it may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateFrom {
    /// The customer's backend: anything, including `signedUpAt`.
    Api,
    /// The page, through the widget: not the sign-up date (and see `Author`).
    Widget { verified: bool },
    /// The widget's start: a widget update that is also a sighting (last
    /// seen now) and fires app-launch whispers.
    Launch { verified: bool },
    /// murmur on the end user's behalf, from a link it signed (an email's
    /// unsubscribe link): as the widget, but not bound by the server-only
    /// list, and it may fix types.
    Link,
}

impl UpdateFrom {
    pub fn author(self) -> Author {
        match self {
            UpdateFrom::Api | UpdateFrom::Link => Author::Backend,
            UpdateFrom::Widget { verified } | UpdateFrom::Launch { verified } => Author::Widget { verified },
        }
    }
}

/// Splits a patch's custom properties into the JSON to store (dates as
/// milliseconds, nulls as removals) and the types to register.
pub fn stored_properties(patch: &UserPatch) -> (Properties, Vec<(String, &'static str)>) {
    let mut props = Map::new();
    let mut types = Vec::new();
    for (name, value) in &patch.properties {
        let stored = match value {
            None => Json::Null,
            Some(Value::Date(ms)) => json!(ms),
            Some(v) => v.to_json(),
        };
        if let Some(v) = value {
            types.push((name.clone(), v.ty().as_str()));
        }
        props.insert(name.clone(), stored);
    }
    (props, types)
}

/// The app version a patch sets: (display text, sort key), or a clear.
pub fn version_change(patch: &UserPatch) -> Option<Option<(String, String)>> {
    patch
        .app_version
        .as_ref()
        .map(|v| v.as_ref().and_then(|s| Version::parse(s).map(|parsed| (s.clone(), parsed.sort_key()))))
}

fn pending_update(
    app_id: &str,
    user_ref: &str,
    patch: &UserPatch,
    now: i64,
    author: Author,
    max_catalog: i64,
) -> PendingUpdate {
    let (properties, types) = stored_properties(patch);
    let changes = AppUserChanges {
        given_name: patch.given_name.clone(),
        surname: patch.surname.clone(),
        email: patch.email.clone(),
        signed_up_at: patch.signed_up_at,
        app_version: version_change(patch),
        platform: patch.platform.clone(),
        properties,
        last_seen_at: None,
    };
    PendingUpdate {
        app_id: app_id.to_string(),
        user_ref: user_ref.to_string(),
        changes,
        types,
        max_properties: MAX_CUSTOM_PROPERTIES as i64,
        fix_types: author.fixes_types(),
        max_catalog,
        now,
    }
}

/// A message as an end user or the team posts it.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub role: Role,
    pub text: MessageText,
    /// The author's name as given.
    pub name: Option<String>,
    /// Take the author's name from the user's row instead (a widget reply:
    /// the page may have renamed the user since the widget started).
    pub name_from_user: bool,
    /// The card this message answers (a widget reply to a whisper).
    pub replying_to: Option<String>,
    /// The conversation it goes into (see `ConversationTarget`).
    pub conversation: ConversationTarget,
    /// The teammate writing, from the dashboard.
    pub teammate: Option<String>,
}

impl NewMessage {
    /// A message into the user's current conversation (or a new one), by no teammate.
    pub fn new(role: Role, text: MessageText) -> Self {
        NewMessage {
            role,
            text,
            name: None,
            name_from_user: false,
            replying_to: None,
            conversation: ConversationTarget::Latest,
            teammate: None,
        }
    }
}

/// A stored message, its user and its conversation.
#[derive(Debug, Clone)]
pub struct Posted {
    pub user: AppUserRow,
    pub message: MessageRow,
    pub conversation: ConversationRow,
    /// The message started the conversation.
    pub started: bool,
}

impl Engine {
    /// A user of the app tracked an event: stores it with the deliveries of
    /// the whispers it fires. From the widget (`user_ref` is murmur's id of
    /// a connected user; its batch may wait the commit window), never an
    /// event the app keeps for its backend. A new name past the app's event
    /// catalog cap is refused. Returns the event's time.
    pub async fn track(&self, app_id: &str, user_ref: &str, event: Event, author: Author) -> Result<i64, ActionError> {
        check_user_ref(user_ref)?;
        let from_widget = matches!(author, Author::Widget { .. });
        if from_widget {
            let live = self.planner.whispers(&self.store, app_id).await?;
            if live.server_only().events.contains(&event.name) {
                return Err(ActionError::ServerOnly { kind: NameKind::Event, name: event.name });
            }
        }
        let at = self.now();
        let online = from_widget && self.hub.is_online(user_ref);
        let plan = self.planner.plan(&self.store, app_id, Trigger::Event(event.name.clone()), at, online).await;
        let pending = PendingEvent {
            app_id: app_id.to_string(),
            user_ref: user_ref.to_string(),
            name: event.name,
            at,
            properties: event.properties,
            max_catalog: self.caps().events,
        };
        let tracked = self.writer.track(pending, plan, from_widget).await?;
        if !tracked.found {
            return Err(ActionError::NoUser);
        }
        if tracked.catalog_full {
            return Err(ActionError::CatalogFull { kind: NameKind::Event, max: self.caps().events });
        }
        self.publish_deliveries(&tracked.delivered).await;
        Ok(at)
    }

    /// Applies a profile patch. A launch also records the sighting and fires
    /// app-launch whispers, planned on the updated row in the same transaction.
    pub async fn update_user(
        &self,
        app_id: &str,
        user_ref: &str,
        patch: &UserPatch,
        from: UpdateFrom,
    ) -> Result<AppUserRow, ActionError> {
        Ok(self.update_and_deliver(app_id, user_ref, patch, from).await?.0)
    }

    /// As `update_user`, also returning the deliveries it made (pushed
    /// already): a starting widget leaves them out of its welcome.
    pub async fn update_and_deliver(
        &self,
        app_id: &str,
        user_ref: &str,
        patch: &UserPatch,
        from: UpdateFrom,
    ) -> Result<(AppUserRow, Vec<DeliveryRow>), ActionError> {
        check_user_ref(user_ref)?;
        if patch.user_id.as_deref().is_some_and(|id| id != user_ref) && from == UpdateFrom::Api {
            return Err(Invalid::new("userId", "userId cannot be changed.").into());
        }
        let author = from.author();
        if let Author::Widget { .. } = author {
            self.widget_may_set(app_id, patch).await?;
        }
        let now = self.now();
        let mut job = pending_update(app_id, user_ref, patch, now, author, self.caps().properties);
        if from != UpdateFrom::Api {
            job.changes.signed_up_at = None;
        }
        let launch = matches!(from, UpdateFrom::Launch { .. });
        if launch {
            job.changes.last_seen_at = Some(now);
        }
        // App-launch whispers, and property-match whispers the new values
        // make the user match (now, or later as time passes: due times).
        let online = from != UpdateFrom::Api && self.hub.is_online(user_ref);
        let plan = self.planner.plan_update(&self.store, app_id, now, online, launch).await;
        let (row, delivered) = self.writer.update(job, plan).await??;
        self.publish_deliveries(&delivered).await;
        Ok((row, delivered))
    }

    /// Refuses a widget's patch that names one of the app's server-only
    /// properties (set or removed). Also checked by a starting widget before
    /// its user is found or created, so that a refused hello writes nothing.
    pub async fn widget_may_set(&self, app_id: &str, patch: &UserPatch) -> Result<(), ActionError> {
        let live = self.planner.whispers(&self.store, app_id).await?;
        let server_only = &live.server_only().properties;
        match patch.properties.iter().find(|(name, _)| server_only.contains(name)) {
            Some((name, _)) => Err(ActionError::ServerOnly { kind: NameKind::Property, name: name.clone() }),
            None => Ok(()),
        }
    }

    /// Posts a message into one of the user's conversations (found or
    /// started in the message's transaction: `ConversationTarget`; a user's
    /// message reopens a closed one). A user's first own message fires
    /// first-message whispers in the same transaction (so two first
    /// messages at once fire them once). Returns the user, the stored
    /// message and its conversation.
    pub async fn post_message(&self, app_id: &str, user_ref: &str, m: NewMessage) -> Result<Posted, ActionError> {
        check_user_ref(user_ref)?;
        if let ConversationTarget::Given(id) = &m.conversation {
            if self.store.user_conversation(app_id, user_ref, id).await?.is_none() {
                return Err(ActionError::NoConversation);
            }
        }
        let now = self.now();
        let (plan, office_reply) = match m.role {
            Role::AppUser => match self.planner.whispers(&self.store, app_id).await {
                // First-message whispers; outside office hours, the office-hours
                // reply (once per closed period), which stands in for them.
                Ok(live) => {
                    let online = self.hub.is_online(user_ref);
                    (live.delivery_plan(Trigger::FirstMessage, now, online), live.office_reply(now))
                }
                Err(e) => {
                    tracing::error!(error = %e, "loading the active whispers failed");
                    (None, None)
                }
            },
            Role::AppMaker => (None, None),
        };
        let pending = PendingMessage {
            app_id: app_id.to_string(),
            user_ref: user_ref.to_string(),
            name_from_user: m.name_from_user,
            office_reply,
            message: MessageRow {
                id: new_id(),
                role: m.role.as_str().to_string(),
                name: m.name,
                text: m.text.into_string(),
                created_at: now,
                conversation_id: None,
            },
            joining: Joining {
                target: m.conversation,
                card: m.replying_to.clone(),
                teammate: m.teammate,
                new_id: new_id(),
            },
        };
        let posted = self.writer.message(pending, plan).await?.ok_or(ActionError::NoUser)?;
        if let Some(card) = m.replying_to {
            self.react(&posted.user.id, &card, Reaction::Replied).await?;
        }
        // Live to the user's open widgets and the open inboxes; an offline
        // user gets it when their widget next starts.
        self.publish_message(app_id, &posted.user.id, &posted.message).await;
        if let Some(reply) = &posted.reply {
            self.publish_message(app_id, &posted.user.id, reply).await;
        }
        self.publish_deliveries(&posted.delivered).await;
        Ok(Posted {
            user: posted.user,
            message: posted.message,
            conversation: posted.conversation,
            started: posted.started,
        })
    }

    /// The widget's user read one of their conversations.
    pub async fn conversation_read(&self, app_user_id: &str, conversation_id: &str) -> Result<(), ActionError> {
        self.store.conversation_read_by_user(app_user_id, conversation_id).await?;
        Ok(())
    }

    /// With office hours on: whether the team is open now and when it is
    /// next back (what a starting widget shows).
    pub async fn office_status(&self, app_id: &str) -> Option<(bool, Option<i64>)> {
        self.planner.whispers(&self.store, app_id).await.ok()?.office_status(self.now())
    }

    /// The user of a starting widget: identified by `user_id` (merging the
    /// device's anonymous user into them) or the device's anonymous user,
    /// created on first sight.
    pub async fn widget_user(
        &self,
        app_id: &str,
        user_id: Option<&str>,
        device_id: Option<&str>,
    ) -> Result<AppUserRow, ActionError> {
        let job = crate::storage::WidgetUser {
            app_id: app_id.to_string(),
            user_id: user_id.map(str::to_string),
            device_id: device_id.map(str::to_string),
            new_id: new_id(),
            now: self.now(),
        };
        self.writer.widget_user(job).await.map_err(|e| match e {
            super::writer::UserFailed::Taken => {
                ActionError::Invalid(Invalid::new("userId", "This userId is taken by another user's id."))
            }
            super::writer::UserFailed::Write(w) => w.into(),
        })
    }

    /// A widget reports what its user did with a card. False: the card is
    /// not this user's (nothing changes).
    pub async fn react(&self, app_user_id: &str, delivery_id: &str, reaction: Reaction) -> Result<bool, ActionError> {
        let r = React {
            app_user_id: app_user_id.to_string(),
            delivery_id: delivery_id.to_string(),
            reaction,
            now: self.now(),
        };
        Ok(self.writer.react(r).await?)
    }

    /// The cards a starting widget shows (see `Store::user_deliveries`),
    /// recorded as sent.
    pub async fn cards_for_start(&self, app_user_id: &str) -> Result<Vec<DeliveryRow>, ActionError> {
        // Manual messages waiting for this user are claimed (and rendered) first.
        self.pending_message_cards(app_user_id).await?;
        let deliveries = self.store.user_deliveries(app_user_id, 50).await?;
        let pending: Vec<String> = deliveries.iter().filter(|d| d.sent_at.is_none()).map(|d| d.id.clone()).collect();
        self.writer.mark_sent(pending, self.now()).await?;
        Ok(deliveries)
    }
}
