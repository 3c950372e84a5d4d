//! Real-time delivery: which active whispers a trigger fires for a user
//! (evaluated in memory), the unique delivery row, and pushing cards and
//! messages to every open widget of the user, on this instance through the
//! hub and on the others through PostgreSQL's LISTEN/NOTIFY.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::hub::{Frame, Hub};
use crate::{
    domain::{
        conditions::{matches_all, Checked},
        properties::PropType,
        teammate::initials,
        template::{self, Segment},
        whisper::{lookup, ButtonAction, Trigger},
    },
    server::{crypto::new_id, state::AppState, users::personal_values},
    storage::{
        audience::RowProps, AppUserRow, DeliveryPlan, DeliveryRow, MessageRow, NewDelivery, PendingEvent, Store,
        StoreError, StoreResult,
    },
};

/// How long an app's active whispers are trusted without reloading. Edits
/// on this instance (and, on PostgreSQL, on any instance) drop the cached
/// copy at once; this only bounds a missed notification.
const CACHE_TTL: Duration = Duration::from_secs(5);

/// A whisper's card exactly as the widget shows it (and as stored in the
/// delivery row): the text is already personalised and sanitised HTML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    pub sender: CardSender,
    pub html: String,
    pub buttons: Vec<CardButton>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardSender {
    pub name: String,
    pub initials: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardButton {
    pub label: String,
    /// `link` or `reply`.
    pub kind: String,
    pub value: String,
}

/// An active whisper, ready to evaluate.
struct LiveWhisper {
    id: String,
    revision: i64,
    trigger: Trigger,
    all_users: bool,
    conditions: Vec<Checked>,
    text: Vec<Segment>,
    sender: CardSender,
    buttons: Vec<CardButton>,
}

struct AppWhispers {
    loaded: Instant,
    whispers: Vec<LiveWhisper>,
    types: HashMap<String, PropType>,
}

impl AppWhispers {
    fn fires(&self, trigger: &Trigger) -> bool {
        self.whispers.iter().any(|w| w.trigger == *trigger)
    }

    /// The deliveries `trigger` makes for `user`: one per active whisper
    /// with that trigger whose audience the user is in, personalised.
    /// `online`: the user has a widget open here (stored as sent).
    fn plan(&self, trigger: &Trigger, user: &AppUserRow, now: i64, online: bool) -> Vec<NewDelivery> {
        let props = RowProps { row: user, types: &self.types };
        let mut values = None;
        let mut out = vec![];
        for w in self.whispers.iter().filter(|w| w.trigger == *trigger) {
            if !w.all_users && !matches_all(&w.conditions, &props, now) {
                continue;
            }
            let values = values.get_or_insert_with(|| personal_values(user, &self.types));
            let card = Card {
                sender: w.sender.clone(),
                html: template::render_html(&w.text, |n| lookup(values, n)),
                buttons: w.buttons.clone(),
            };
            out.push(NewDelivery {
                id: new_id(),
                app_id: user.app_id.clone(),
                whisper_id: w.id.clone(),
                app_user_id: user.id.clone(),
                revision: w.revision,
                rendered: serde_json::to_string(&card).unwrap_or_default(),
                now,
                sent: online,
            });
        }
        out
    }
}

/// How many groups the open widgets' heartbeats are spread over.
const BEAT_PHASES: usize = 25;

/// Shared by the whole server instance.
pub struct Live {
    pub hub: Hub,
    /// Tells this instance's notifications from the others'.
    pub instance: String,
    cache: Mutex<HashMap<String, Arc<AppWhispers>>>,
    closing: tokio::sync::watch::Sender<bool>,
    /// The heartbeat, in `BEAT_PHASES` channels: each ticks once per
    /// period, one after the other, so the open widgets' pings are spread
    /// over the period instead of all waking at once (which stalled every
    /// card in flight: BENCHMARKS.md). A channel's value turns true when the
    /// server starts stopping (so an open widget waits on one channel for
    /// both).
    heartbeat: Vec<tokio::sync::watch::Sender<bool>>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            hub: Hub::default(),
            instance: new_id(),
            cache: Mutex::default(),
            closing: tokio::sync::watch::Sender::new(false),
            heartbeat: (0..BEAT_PHASES).map(|_| tokio::sync::watch::Sender::new(false)).collect(),
        }
    }
}

/// What happened that a widget should hear about.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "k")]
enum Notice {
    #[serde(rename = "d")]
    Delivery { from: String, user: String, id: String },
    #[serde(rename = "m")]
    Message { from: String, user: String, id: String },
    #[serde(rename = "w")]
    Whispers { from: String, app: String },
}

/// The frame a widget receives for a delivered card.
pub fn card_json(d: &DeliveryRow) -> serde_json::Value {
    let card: serde_json::Value = serde_json::from_str(&d.rendered).unwrap_or_default();
    json!({ "t": "card", "id": d.id, "at": d.created_at, "seen": d.seen_at.is_some(), "card": card })
}

pub fn message_json(m: &MessageRow) -> serde_json::Value {
    json!({ "id": m.id, "role": m.role, "name": m.name, "text": m.text, "at": m.created_at })
}

fn message_frame(m: &MessageRow) -> String {
    json!({ "t": "message", "message": message_json(m) }).to_string()
}

impl Live {
    /// The server is stopping: every open widget connection closes.
    pub fn close_all(&self) {
        self.closing.send_replace(true);
        for beat in &self.heartbeat {
            beat.send_replace(true);
        }
    }

    /// Changes every `period` while the server runs: each open widget
    /// pings its client on it and checks it heard from it lately. Its value
    /// is true once the server is stopping.
    /// `conn` picks the phase (connection ids are sequential).
    pub fn heartbeat(&self, conn: u64) -> tokio::sync::watch::Receiver<bool> {
        self.heartbeat[(conn % BEAT_PHASES as u64) as usize].subscribe()
    }

    /// Starts the shared heartbeat: one timer for every connection, ticking
    /// each phase in turn, so every widget hears it once per `period`.
    pub fn start_heartbeat(self: &Arc<Self>, period: Duration) {
        let live = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut phase = 0;
            let mut tick = tokio::time::interval(period / BEAT_PHASES as u32);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(live) = live.upgrade() else { return };
                if *live.closing.borrow() {
                    return;
                }
                live.heartbeat[phase].send_modify(|_| ());
                phase = (phase + 1) % BEAT_PHASES;
            }
        });
    }

    /// Resolves when the server starts stopping.
    pub fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Forget the app's cached whispers here and on every other instance.
    pub async fn whispers_changed(&self, state: &AppState, app_id: &str) {
        self.forget(app_id);
        let notice = Notice::Whispers { from: self.instance.clone(), app: app_id.to_string() };
        notify(&state.store, &notice).await;
    }

    fn forget(&self, app_id: &str) {
        if let Ok(mut c) = self.cache.lock() {
            c.remove(app_id);
        }
    }

    async fn whispers(&self, state: &AppState, app_id: &str) -> StoreResult<Arc<AppWhispers>> {
        if let Some(hit) = self.cache.lock().ok().and_then(|c| c.get(app_id).cloned()) {
            if hit.loaded.elapsed() < CACHE_TTL {
                return Ok(hit);
            }
        }
        let loaded = Instant::now();
        let rows = state.store.active_whispers(app_id).await?;
        let types = state.store.property_types(app_id).await?;
        let mut whispers = Vec::with_capacity(rows.len());
        for row in rows {
            let d = row.definition.0;
            let conditions: Result<Vec<Checked>, _> =
                d.conditions.iter().map(|c| c.check(|n| types.get(n).copied())).collect();
            let (Ok(conditions), Ok(text)) = (conditions, template::parse(&d.text)) else {
                tracing::warn!(whisper = %row.id, "an active whisper no longer checks; skipping it");
                continue;
            };
            let sender_name = match state.store.teammate_by_id(&d.sender_id).await? {
                Some(t) => t.name,
                None => "The team".to_string(),
            };
            whispers.push(LiveWhisper {
                id: row.id,
                revision: row.revision,
                trigger: d.trigger,
                all_users: d.all_users,
                conditions,
                text,
                sender: CardSender { initials: initials(&sender_name), name: sender_name },
                buttons: d
                    .buttons
                    .into_iter()
                    .map(|b| match b.action {
                        ButtonAction::Link(url) => CardButton { label: b.label, kind: "link".into(), value: url },
                        ButtonAction::Reply(text) => CardButton { label: b.label, kind: "reply".into(), value: text },
                    })
                    .collect(),
            });
        }
        let fresh = Arc::new(AppWhispers { loaded, whispers, types });
        if let Ok(mut c) = self.cache.lock() {
            c.insert(app_id.to_string(), fresh.clone());
        }
        Ok(fresh)
    }

    /// Fires `trigger` for the user `user_ref` (userId or murmur id) of
    /// `app_id`: every active whisper with that trigger whose audience the
    /// user is in gets delivered, once ever per user, and pushed to the
    /// user's open widgets. Returns how many deliveries this call made.
    pub async fn fire(&self, state: &AppState, app_id: &str, user_ref: &str, trigger: &Trigger) -> StoreResult<usize> {
        let live = self.whispers(state, app_id).await?;
        if !live.fires(trigger) {
            return Ok(0);
        }
        let Some(user) = state.store.app_user(app_id, user_ref).await? else { return Ok(0) };
        let mut made = 0;
        for d in live.plan(trigger, &user, state.now(), self.hub.is_online(&user.id)) {
            let row = d.row();
            let created = state.ingest.deliver(d).await.map_err(|e| StoreError::Db(sqlx::Error::Protocol(e)))?;
            if created {
                made += 1;
                self.publish_delivery(state, &row).await?;
            }
        }
        Ok(made)
    }

    /// Stores a tracked event and the deliveries of the whispers it
    /// triggers in one transaction (the user's row is read inside it), then
    /// pushes the new cards. `Ok(None)`: no such user (nothing written);
    /// else how many deliveries were made. `patient`: see `Ingest::track`.
    pub async fn track(
        self: &Arc<Self>,
        state: &AppState,
        event: PendingEvent,
        patient: bool,
    ) -> Result<Option<usize>, String> {
        let trigger = Trigger::Event(event.name.clone());
        // Without the whispers the event is still stored; it fires nothing.
        let plan = match self.whispers(state, &event.app_id).await {
            Ok(live) if live.fires(&trigger) => {
                let (me, now) = (self.clone(), state.now());
                Some(Box::new(move |user: &AppUserRow| live.plan(&trigger, user, now, me.hub.is_online(&user.id)))
                    as DeliveryPlan)
            }
            Ok(_) => None,
            Err(e) => {
                tracing::error!(error = %e, "loading the active whispers failed");
                None
            }
        };
        let tracked = state.ingest.track(event, plan, patient).await?;
        if !tracked.found {
            return Ok(None);
        }
        for d in &tracked.delivered {
            if let Err(e) = self.publish_delivery(state, d).await {
                tracing::error!(error = %e, "pushing a card failed");
            }
        }
        Ok(Some(tracked.delivered.len()))
    }

    /// Pushes a new delivery to the user's widgets here and elsewhere.
    async fn publish_delivery(&self, state: &AppState, d: &DeliveryRow) -> StoreResult<()> {
        self.push_delivery_here(state, d).await?;
        let notice = Notice::Delivery { from: self.instance.clone(), user: d.app_user_id.clone(), id: d.id.clone() };
        notify(&state.store, &notice).await;
        Ok(())
    }

    async fn push_delivery_here(&self, state: &AppState, d: &DeliveryRow) -> StoreResult<()> {
        let frame: Frame = Arc::from(card_json(d).to_string());
        if self.hub.push(&d.app_user_id, frame) > 0 && d.sent_at.is_none() {
            state.store.mark_sent(std::slice::from_ref(&d.id), state.now()).await?;
        }
        Ok(())
    }

    /// Pushes a stored message to the user's widgets here and elsewhere.
    pub async fn publish_message(&self, state: &AppState, app_user_id: &str, m: &MessageRow) {
        self.hub.push(app_user_id, Arc::from(message_frame(m)));
        let notice = Notice::Message { from: self.instance.clone(), user: app_user_id.to_string(), id: m.id.clone() };
        notify(&state.store, &notice).await;
    }

    /// Handles another instance's notice.
    async fn on_notice(&self, state: &AppState, payload: &str) -> StoreResult<()> {
        let Ok(notice) = serde_json::from_str::<Notice>(payload) else {
            tracing::warn!("ignoring a malformed notification");
            return Ok(());
        };
        match notice {
            Notice::Delivery { from, .. } | Notice::Message { from, .. } | Notice::Whispers { from, .. }
                if from == self.instance => {}
            Notice::Whispers { app, .. } => self.forget(&app),
            Notice::Delivery { user, id, .. } => {
                if self.hub.is_online(&user) {
                    if let Some(d) = state.store.delivery(&id).await? {
                        self.push_delivery_here(state, &d).await?;
                    }
                }
            }
            Notice::Message { user, id, .. } => {
                if self.hub.is_online(&user) {
                    if let Some((owner, m)) = state.store.message(&id).await? {
                        self.hub.push(&owner, Arc::from(message_frame(&m)));
                    }
                }
            }
        }
        Ok(())
    }
}

async fn notify(store: &Store, notice: &Notice) {
    let payload = serde_json::to_string(notice).unwrap_or_default();
    if let Err(e) = store.notify(&payload).await {
        tracing::error!(error = %e, "could not notify the other instances");
    }
}

/// On PostgreSQL, listens for the other instances' notices for as long as
/// the server runs (reconnecting after a lost connection).
pub fn listen(state: AppState) {
    let Store::Postgres(pool) = state.store.clone() else { return };
    let mut closing = state.live.closing();
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
                        if let Err(e) = state.live.on_notice(&state, n.payload()).await {
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
