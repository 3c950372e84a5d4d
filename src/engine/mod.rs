//! The delivery engine: *who* (audience) → *what* (rendered card) → a
//! durable delivery row → *how* (channels). Every trigger goes through it:
//!
//! - `actions`: the one write service for what end users do (track an
//!   event, update their profile or launch the app, post a message, report
//!   a card seen / clicked / replied), used alike by the REST API and the
//!   widget socket; each takes validated domain values and returns one
//!   typed error (`ActionError`).
//! - `planner`: which active whispers a trigger fires for a user, and the
//!   cards, personalised. A plan runs inside the transaction that stores
//!   the fact that caused it, so one commit stores both.
//! - `writer`: group commit of every write on this path (one writer on
//!   SQLite).
//! - `scheduler`: property-match whispers as time passes (a due-time index
//!   and ticks that claim what is due).
//! - publishing (here): after commit, stored rows are pushed to the in-app
//!   channel (`hub`, the open widgets on this instance) and announced to the
//!   other instances (PostgreSQL NOTIFY), which push them to theirs.
//!
//! Explicit dependencies: the store, the clock, the writer, the hub. The
//! engine never sees the HTTP layer's state.

pub mod actions;
pub mod admission;
pub mod checkpoints;
pub mod email;
pub mod explain;
pub mod hub;
pub mod office;
pub mod planner;
pub mod push;
pub mod recall;
pub mod scheduler;
pub mod send;
pub mod webpush;
pub mod writer;

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};

pub use actions::ActionError;
use hub::{Frame, Hub};
use planner::Planner;
use writer::Writer;

use crate::{
    clock::Clock,
    storage::{new_id, DeliveryRow, MessageRow, Store},
};

pub struct Engine {
    pub store: Store,
    clock: Arc<dyn Clock>,
    pub writer: Writer,
    planner: Planner,
    /// The in-app channel: open widgets on this instance.
    pub hub: Arc<Hub>,
    /// Tells this instance's notices from the others'.
    instance: String,
    /// The email channel, wired at start (`set_email`); without it email
    /// deliveries wait.
    email: std::sync::OnceLock<send::EmailChannel>,
    /// The push channel (`webpush`), wired at start; without it nothing
    /// goes out as a push.
    push: std::sync::RwLock<Option<Arc<webpush::PushChannel>>>,
    /// What changes in the apps' inboxes, for the dashboards open on this
    /// instance (`inbox_events`): fed by this instance's writes and the
    /// other instances' notices.
    inbox: tokio::sync::broadcast::Sender<InboxEvent>,
    /// Per-app caps on the property and event catalogs (`set_caps`).
    max_property_names: std::sync::atomic::AtomicI64,
    max_event_names: std::sync::atomic::AtomicI64,
    /// This instance's metrics (`crate::metrics`; off until turned on).
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Something changed in a conversation of an app (a message, its state,
/// its assignee, its unread count): open inboxes reload what they show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEvent {
    pub app: Arc<str>,
    pub conversation: Arc<str>,
}

/// What happened that a widget on another instance should hear about.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "k")]
enum Notice {
    #[serde(rename = "d")]
    Delivery { from: String, user: String, id: String },
    #[serde(rename = "m")]
    Message {
        from: String,
        user: String,
        id: String,
        /// The app and conversation, for open inboxes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<String>,
    },
    /// A conversation changed (state, assignee, read).
    #[serde(rename = "c")]
    Conversation { from: String, app: String, id: String },
    #[serde(rename = "w")]
    Whispers { from: String, app: String },
    /// A manual message's recipients are fixed: push its cards.
    #[serde(rename = "s")]
    Manual { from: String, id: String },
    /// Cards recalled (user, card): take them off the widgets (`recall`).
    #[serde(rename = "r")]
    Recall { from: String, cards: Vec<(String, String)> },
}

/// The widget frame for a delivered card. The card is spliced in as stored
/// (serialised once, when it was planned).
pub fn card_frame(d: &DeliveryRow) -> String {
    let card = if d.rendered.starts_with('{') { d.rendered.as_str() } else { "{}" };
    format!(
        r#"{{"t":"card","id":{},"at":{},"seen":{},"card":{card}}}"#,
        serde_json::Value::String(d.id.clone()),
        d.created_at,
        d.seen_at.is_some()
    )
}

/// A message as the widget shows it.
/// A team message also carries its light styling as sanitised HTML
/// (`domain::conversation::team_html`); a user's is text only.
pub fn message_json(m: &MessageRow) -> serde_json::Value {
    let mut j = serde_json::json!({ "id": m.id, "role": m.role, "name": m.name, "text": m.text, "at": m.created_at,
                                    "conversation": m.conversation_id });
    if m.role == "appMaker" {
        j["html"] = crate::domain::conversation::team_html(&m.text).into();
    }
    j
}

fn message_frame(m: &MessageRow) -> String {
    serde_json::json!({ "t": "message", "message": message_json(m) }).to_string()
}

impl Engine {
    /// Starts the writers. `group_commit` false: one transaction per write
    /// (the benchmark's baseline); `window`: how long a widget's event
    /// batch waits for company.
    pub async fn start(
        store: Store,
        clock: Arc<dyn Clock>,
        group_commit: bool,
        window: Duration,
    ) -> Result<Arc<Engine>, crate::storage::StoreError> {
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let planner = Planner::default();
        planner.keep_decisions(explain::EvalSink::start(store.clone()));
        Ok(Arc::new(Engine {
            writer: Writer::start(store.clone(), group_commit, window, metrics.clone()).await?,
            store,
            clock,
            planner,
            hub: Arc::new(Hub::default()),
            instance: new_id(),
            email: std::sync::OnceLock::new(),
            push: std::sync::RwLock::new(None),
            inbox: tokio::sync::broadcast::channel(1024).0,
            max_property_names: actions::CatalogCaps::DEFAULT.properties.into(),
            max_event_names: actions::CatalogCaps::DEFAULT.events.into(),
            metrics,
        }))
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Waits until the planner's decisions made so far are kept
    /// (`engine::explain`).
    pub async fn decisions_settled(&self) {
        if let Some(sink) = self.planner.decisions() {
            sink.settled().await;
        }
    }

    /// How many decisions were dropped because the queue was full.
    pub fn decisions_dropped(&self) -> u64 {
        self.planner.decisions().map_or(0, |s| s.dropped())
    }

    /// Keeps the planner's decisions or not (on by default; off only to
    /// measure what keeping them costs).
    pub fn set_keep_decisions(&self, keep: bool) {
        self.planner.set_keep_decisions(keep);
    }

    /// Forgets decisions older than the retention; returns how many.
    pub async fn purge_decisions(&self) -> Result<u64, crate::storage::StoreError> {
        self.store.purge_evaluations(self.now() - explain::RETENTION_DAYS * 86_400_000).await
    }

    /// Sets the per-app catalog caps (`MAX_PROPERTY_NAMES`, `MAX_EVENT_NAMES`;
    /// `CatalogCaps::DEFAULT` until called).
    pub fn set_caps(&self, caps: actions::CatalogCaps) {
        use std::sync::atomic::Ordering::Relaxed;
        self.max_property_names.store(caps.properties, Relaxed);
        self.max_event_names.store(caps.events, Relaxed);
    }

    /// The per-app catalog caps in force.
    pub fn caps(&self) -> actions::CatalogCaps {
        use std::sync::atomic::Ordering::Relaxed;
        actions::CatalogCaps {
            properties: self.max_property_names.load(Relaxed),
            events: self.max_event_names.load(Relaxed),
        }
    }

    /// Whether this instance holds the app's whispers in its cache (a
    /// change heard from another instance drops them: tests wait on it).
    pub fn holds_whispers_of(&self, app_id: &str) -> bool {
        self.planner.holds(app_id)
    }

    /// How many times this instance loaded an app's whispers from the
    /// store (one load however many events find the cached copy stale).
    pub fn whisper_loads(&self) -> usize {
        self.planner.loads()
    }

    /// An app's whispers changed: forget them here and on every other instance.
    pub async fn whispers_changed(&self, app_id: &str) {
        self.planner.forget(app_id);
        self.notify(&Notice::Whispers { from: self.instance.clone(), app: app_id.to_string() }).await;
    }

    /// Pushes new deliveries to the user's widgets here and elsewhere.
    pub async fn publish_deliveries(&self, delivered: &[DeliveryRow]) {
        use crate::metrics::{Channel, Source};
        self.metrics.deliveries_created(Source::Whisper, delivered.len());
        // Made as sent: the user's widget was open here when it was planned.
        self.metrics.deliveries_sent(Channel::Widget, delivered.iter().filter(|d| d.sent_at.is_some()).count());
        let mut notices = Vec::with_capacity(delivered.len());
        let mut sent_here = Vec::with_capacity(delivered.len());
        for d in delivered {
            match self.push_delivery_here(d).await {
                Ok(here) => sent_here.push(here),
                Err(e) => {
                    sent_here.push(false);
                    tracing::error!(error = %e, "pushing a card failed");
                }
            }
            let notice =
                Notice::Delivery { from: self.instance.clone(), user: d.app_user_id.clone(), id: d.id.clone() };
            notices.push(serde_json::to_string(&notice).unwrap_or_default());
        }
        // One round trip for all of them.
        if let Err(e) = self.store.notify_all(&notices).await {
            tracing::error!(error = %e, "could not notify the other instances");
        }
        // Cards no widget here took may go out as a push (after a grace
        // period in which a widget open elsewhere takes them).
        self.queue_whisper_push(delivered, &sent_here).await;
    }

    /// Offers a card to the user's widgets open here; true if one took it.
    async fn push_delivery_here(&self, d: &DeliveryRow) -> Result<bool, writer::WriteFailed> {
        let frame: Frame = Arc::from(card_frame(d));
        let here = self.hub.push(&d.app_user_id, frame) > 0;
        if here && d.sent_at.is_none() {
            self.writer.mark_sent(vec![d.id.clone()], self.now()).await?;
        }
        Ok(here)
    }

    /// Pushes a stored message to the user's widgets and to the open
    /// inboxes, here and elsewhere.
    pub async fn publish_message(&self, app_id: &str, app_user_id: &str, m: &MessageRow) {
        self.hub.push(app_user_id, Arc::from(message_frame(m)));
        if let Some(c) = &m.conversation_id {
            self.inbox_changed_here(app_id, c);
        }
        let notice = Notice::Message {
            from: self.instance.clone(),
            user: app_user_id.to_string(),
            id: m.id.clone(),
            app: Some(app_id.to_string()),
            conversation: m.conversation_id.clone(),
        };
        self.notify(&notice).await;
    }

    /// Changes in the apps' inboxes, as they happen on any instance.
    pub fn inbox_events(&self) -> tokio::sync::broadcast::Receiver<InboxEvent> {
        self.inbox.subscribe()
    }

    fn inbox_changed_here(&self, app_id: &str, conversation_id: &str) {
        // No dashboard open here: nobody to tell (not an error).
        let _ = self.inbox.send(InboxEvent { app: Arc::from(app_id), conversation: Arc::from(conversation_id) });
    }

    /// A conversation changed (state, assignee, read): tell the open inboxes
    /// here and on the other instances.
    pub async fn conversation_changed(&self, app_id: &str, conversation_id: &str) {
        self.inbox_changed_here(app_id, conversation_id);
        let notice = Notice::Conversation {
            from: self.instance.clone(),
            app: app_id.to_string(),
            id: conversation_id.to_string(),
        };
        self.notify(&notice).await;
    }

    async fn notify(&self, notice: &Notice) {
        let payload = serde_json::to_string(notice).unwrap_or_default();
        if let Err(e) = self.store.notify(&payload).await {
            tracing::error!(error = %e, "could not notify the other instances");
        }
    }

    /// Handles another instance's notice.
    async fn on_notice(&self, payload: &str) -> Result<(), String> {
        let Ok(notice) = serde_json::from_str::<Notice>(payload) else {
            tracing::warn!("ignoring a malformed notification");
            return Ok(());
        };
        match notice {
            Notice::Delivery { from, .. }
            | Notice::Message { from, .. }
            | Notice::Whispers { from, .. }
            | Notice::Manual { from, .. }
            | Notice::Conversation { from, .. }
            | Notice::Recall { from, .. }
                if from == self.instance => {}
            Notice::Recall { cards, .. } => self.recall_here(cards.iter().map(|(u, id)| (u.as_str(), id.as_str()))),
            Notice::Conversation { app, id, .. } => self.inbox_changed_here(&app, &id),
            Notice::Manual { id, .. } => {
                self.publish_manual_here(&id).await.map_err(|e| e.to_string())?;
            }
            Notice::Whispers { app, .. } => self.planner.forget(&app),
            Notice::Delivery { user, id, .. } => {
                if self.hub.is_online(&user) {
                    // A card recalled meanwhile is not shown.
                    if let Some(d) =
                        self.store.delivery(&id).await.map_err(|e| e.to_string())?.filter(|d| d.state != "cancelled")
                    {
                        self.push_delivery_here(&d).await.map_err(|e| e.to_string())?;
                    }
                }
            }
            Notice::Message { user, id, app, conversation, .. } => {
                if let (Some(app), Some(c)) = (app, conversation) {
                    self.inbox_changed_here(&app, &c);
                }
                if self.hub.is_online(&user) {
                    if let Some((owner, m)) = self.store.message(&id).await.map_err(|e| e.to_string())? {
                        self.hub.push(&owner, Arc::from(message_frame(&m)));
                    }
                }
            }
        }
        Ok(())
    }

    /// On PostgreSQL, listens for the other instances' notices for as long
    /// as the server runs (reconnecting after a lost connection).
    pub fn listen(self: &Arc<Self>) {
        let Store::Postgres(pool) = self.store.clone() else { return };
        let engine = self.clone();
        let mut closing = self.hub.closing();
        tokio::spawn(async move {
            while !*closing.borrow() {
                let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot listen for notifications; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if let Err(e) = listener.listen("murmur").await {
                    tracing::error!(error = %e, "cannot LISTEN; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                loop {
                    let next = tokio::select! {
                        n = listener.recv() => n,
                        _ = closing.changed() => return,
                    };
                    match next {
                        Ok(n) => {
                            if let Err(e) = engine.on_notice(n.payload()).await {
                                tracing::error!(error = %e, "a notification could not be handled");
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "lost the notification connection; reconnecting");
                            break;
                        }
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_frame_is_json_with_the_stored_card_inside() {
        let d = DeliveryRow {
            id: "d\"1".into(),
            app_user_id: "u".into(),
            whisper_id: "w".into(),
            state: "sent".into(),
            rendered: r#"{"sender":{"name":"A","initials":"A"},"html":"<p>hi</p>","buttons":[]}"#.into(),
            sent_at: Some(1),
            seen_at: None,
            created_at: 5,
        };
        let v: serde_json::Value = serde_json::from_str(&card_frame(&d)).unwrap();
        assert_eq!(v["t"], "card");
        assert_eq!(v["id"], "d\"1");
        assert_eq!(v["seen"], false);
        assert_eq!(v["card"]["html"], "<p>hi</p>");
    }
}
