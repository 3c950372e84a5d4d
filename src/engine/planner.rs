//! The planner: *who* and *what*. For a trigger and a user's row it decides
//! which active whispers the user gets (audience evaluated in memory) and
//! renders each card with the user's values. It is pure given the app's
//! active whispers (cached here), so the writer can run a plan inside the
//! transaction that stores the fact that caused it: one commit stores both.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use crate::{
    domain::{
        conditions::{matches_all, next_match, Checked, Condition},
        explain::{ConditionResult, Evaluation, Outcome, TriggerFact},
        properties::PropType,
        teammate::initials,
        template::{self, Segment},
        whisper::{lookup, ButtonAction, Trigger},
    },
    engine::{explain::EvalSink, office::Schedule},
    refresh::{Look, Refreshes},
    storage::{
        audience::RowProps, new_id, AppUserRow, DeliveryPlan, EvaluationRecord, NewDelivery, OfficeReply, Planned,
        Received, ServerOnlyNames, Store, StoreResult, UpdatePlan,
    },
};

/// How long an app's active whispers are trusted without reloading. Edits
/// on any instance drop the cached copy at once; this only bounds a missed
/// notification.
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

/// What a card's button does, spelled once for the stored card and the widget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ButtonKind {
    Link,
    Reply,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardButton {
    pub label: String,
    pub kind: ButtonKind,
    pub value: String,
}

/// An active whisper, ready to evaluate.
struct LiveWhisper {
    id: String,
    revision: i64,
    trigger: Trigger,
    all_users: bool,
    conditions: Vec<Checked>,
    /// The conditions as written (for the decisions kept, `engine::explain`).
    raw_conditions: Vec<Condition>,
    text: Vec<Segment>,
    sender: CardSender,
    buttons: Vec<CardButton>,
    /// Also as a push when the user is not online.
    push: bool,
}

/// One app's active whispers, property types, office hours and
/// server-only names, as loaded
/// at `loaded`.
pub struct AppWhispers {
    loaded: Instant,
    whispers: Vec<LiveWhisper>,
    types: HashMap<String, PropType>,
    office: Option<Office>,
    /// What the widget may not set or track (`engine::actions`).
    server_only: ServerOnlyNames,
    /// Where decisions are kept (none: not kept).
    sink: Option<EvalSink>,
}

/// Office hours in force, with the reply's parsed text.
struct Office {
    schedule: Schedule,
    reply: Vec<Segment>,
}

impl AppWhispers {
    /// The app's custom property types (as loaded with the whispers).
    pub fn types(&self) -> &HashMap<String, PropType> {
        &self.types
    }

    /// The app's server-only property and event names (as loaded with the
    /// whispers): the widget may not set or track them.
    pub fn server_only(&self) -> &ServerOnlyNames {
        &self.server_only
    }

    /// A user's values for personalising text.
    pub fn personal_values(&self, user: &AppUserRow) -> Vec<(String, String)> {
        RowProps { row: user, types: &self.types }.personal_values()
    }

    /// With office hours on: whether the team is open at `now`, and when
    /// it is next back (`None` if the week has no hours).
    pub fn office_status(&self, now: i64) -> Option<(bool, Option<i64>)> {
        let o = self.office.as_ref()?;
        Some((o.schedule.is_open(now), o.schedule.next_open(now)))
    }

    /// Outside office hours: the reply a user's message gets.
    pub fn office_reply(self: &Arc<Self>, now: i64) -> Option<OfficeReply> {
        let o = self.office.as_ref()?;
        if o.schedule.is_open(now) {
            return None;
        }
        let me = self.clone();
        Some(OfficeReply {
            id: new_id(),
            since: o.schedule.last_close(now).unwrap_or(i64::MIN),
            name: None,
            text: Arc::new(move |user: &AppUserRow| {
                let values = RowProps { row: user, types: &me.types }.personal_values();
                let reply = me.office.as_ref().map(|o| o.reply.as_slice()).unwrap_or_default();
                template::render_text(reply, |n| lookup(&values, n))
            }),
        })
    }

    /// Whether the active whisper `id` asks to go out as a push too.
    pub fn wants_push(&self, id: &str) -> bool {
        self.whispers.iter().any(|w| w.id == id && w.push)
    }

    pub fn fires(&self, trigger: &Trigger) -> bool {
        self.whispers.iter().any(|w| w.trigger == *trigger)
    }

    /// The deliveries `trigger` makes for `user`: one per active whisper
    /// with that trigger whose audience the user is in, personalised.
    /// `sent`: the user has a widget open here (stored as sent, pushed next).
    pub fn plan(&self, trigger: &Trigger, user: &AppUserRow, now: i64, sent: bool) -> Vec<NewDelivery> {
        let props = RowProps { row: user, types: &self.types };
        let mut values = None;
        let mut out = vec![];
        for w in self.whispers.iter().filter(|w| w.trigger == *trigger) {
            let matched = match &self.sink {
                None => w.all_users || matches_all(&w.conditions, &props, now),
                Some(sink) => {
                    let conditions = w.evaluate(&props, now);
                    let matched = conditions.iter().all(|c| c.passed);
                    let outcome = if matched { Outcome::Matched } else { Outcome::NotMatched };
                    sink.record(w.decision(user, now, TriggerFact::of(trigger), conditions, outcome));
                    matched
                }
            };
            if !matched {
                continue;
            }
            let values = values.get_or_insert_with(|| props.personal_values());
            out.push(w.deliver(user, values, now, sent));
        }
        out
    }

    /// For a user whose values were just written (`launch`: by the widget's
    /// start), or who is due: the app-launch deliveries (on a launch), a
    /// delivery for each property-match whisper they match now and have not
    /// received, and the earliest time time alone makes them match another
    /// (`domain::conditions::next_match`), their new due time.
    pub fn plan_update(&self, user: &AppUserRow, received: &Received, now: i64, sent: bool, launch: bool) -> Planned {
        let mut planned = if launch {
            Planned { deliveries: self.plan(&Trigger::AppLaunch, user, now, sent), ..Planned::default() }
        } else {
            Planned::default()
        };
        let props = RowProps { row: user, types: &self.types };
        let mut values = None;
        for w in self.whispers.iter().filter(|w| w.trigger == Trigger::PropertyMatch) {
            planned.sets_due = true;
            if received.contains(&w.id) {
                continue;
            }
            let next = next_match(&w.conditions, &props, now);
            // Only the match is kept: a property-match whisper is checked on
            // every change to the user's values (and by the due tick when
            // time alone makes them match), so a miss is exactly what the
            // explainer computes from their current values; recording each
            // would write one row per whisper per update.
            if let (Some(sink), Some(t)) = (&self.sink, next) {
                if t <= now {
                    sink.record(w.decision(user, now, TriggerFact::Match, w.evaluate(&props, now), Outcome::Matched));
                }
            }
            match next {
                Some(t) if t <= now => {
                    let values = values.get_or_insert_with(|| props.personal_values());
                    planned.deliveries.push(w.deliver(user, values, now, sent));
                }
                Some(t) => planned.due = Some(planned.due.map_or(t, |d: i64| d.min(t))),
                None => {}
            }
        }
        planned
    }

    /// The plan for `trigger`, to run on the user's row inside the write
    /// that causes it; `None` when no active whisper has that trigger.
    pub fn delivery_plan(self: &Arc<Self>, trigger: Trigger, now: i64, sent: bool) -> Option<DeliveryPlan> {
        let live = self.clone();
        self.fires(&trigger)
            .then(|| Arc::new(move |user: &AppUserRow| live.plan(&trigger, user, now, sent)) as DeliveryPlan)
    }

    fn has_property_match(&self) -> bool {
        self.fires(&Trigger::PropertyMatch)
    }
}

impl LiveWhisper {
    /// Each condition for `user` at `now`, with their value (none when the
    /// audience is everyone).
    fn evaluate(&self, user: &RowProps<'_>, now: i64) -> Vec<ConditionResult> {
        if self.all_users {
            return vec![];
        }
        self.raw_conditions
            .iter()
            .zip(&self.conditions)
            .map(|(raw, c)| ConditionResult::of(raw, c, user, now))
            .collect()
    }

    /// The decision to keep.
    fn decision(
        &self,
        user: &AppUserRow,
        now: i64,
        trigger: TriggerFact,
        conditions: Vec<ConditionResult>,
        outcome: Outcome,
    ) -> EvaluationRecord {
        EvaluationRecord {
            app_id: user.app_id.clone(),
            whisper_id: self.id.clone(),
            app_user_id: user.id.clone(),
            evaluation: Evaluation {
                at: now,
                revision: self.revision,
                trigger,
                all_users: self.all_users,
                conditions,
                outcome,
            },
        }
    }

    /// The card for `user`, personalised with `values`.
    fn deliver(&self, user: &AppUserRow, values: &[(String, String)], now: i64, sent: bool) -> NewDelivery {
        let card = Card {
            sender: self.sender.clone(),
            html: template::render_html(&self.text, |n| lookup(values, n)),
            buttons: self.buttons.clone(),
        };
        NewDelivery {
            id: new_id(),
            app_id: user.app_id.clone(),
            whisper_id: self.id.clone(),
            app_user_id: user.id.clone(),
            revision: self.revision,
            // Serialised once: stored as is and spliced into the widget's frame.
            rendered: serde_json::to_string(&card).unwrap_or_default(),
            now,
            sent,
        }
    }
}

/// The active whispers of every app this instance has seen lately.
#[derive(Default)]
pub struct Planner {
    cache: Mutex<HashMap<String, Arc<AppWhispers>>>,
    /// How the cached whispers are refreshed (`crate::refresh`).
    refreshes: Refreshes,
    loads: std::sync::atomic::AtomicUsize,
    /// Some whisper loaded here asks for push (until then, publishing
    /// skips the push check entirely).
    any_push: std::sync::atomic::AtomicBool,
    /// Where decisions are kept (`engine::explain`), once started.
    sink: std::sync::OnceLock<EvalSink>,
    /// Decisions are not kept (the benchmark's baseline).
    skip_decisions: std::sync::atomic::AtomicBool,
}

impl Planner {
    /// Keeps the decisions from now on (apps loaded from now on).
    pub fn keep_decisions(&self, sink: EvalSink) {
        let _ = self.sink.set(sink);
    }

    /// Where decisions are kept, if they are.
    pub fn decisions(&self) -> Option<&EvalSink> {
        self.sink.get()
    }

    /// Keeps decisions or not from now on (apps loaded from now on; the
    /// cache is dropped). For measuring what keeping them costs.
    pub fn set_keep_decisions(&self, keep: bool) {
        self.skip_decisions.store(!keep, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut c) = self.cache.lock() {
            c.clear();
        }
    }

    /// How many times an app's whispers were loaded from the store.
    pub fn loads(&self) -> usize {
        self.loads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the app's whispers are in the cache.
    pub fn holds(&self, app_id: &str) -> bool {
        self.cache.lock().is_ok_and(|c| c.contains_key(app_id))
    }

    /// Forget an app's cached whispers (they changed).
    pub fn forget(&self, app_id: &str) {
        if let Ok(mut c) = self.cache.lock() {
            c.remove(app_id);
        }
    }

    /// The app of a cached active whisper that asks to go out as a push
    /// too (the deliveries just planned came from the cache).
    pub fn push_app_of(&self, whisper_id: &str) -> Option<String> {
        if !self.any_push.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let cache = self.cache.lock().ok()?;
        cache.iter().find(|(_, live)| live.wants_push(whisper_id)).map(|(app, _)| app.clone())
    }

    /// The app's active whispers, from the cache or the store.
    /// Past half its life the copy is refreshed by one request while the
    /// others keep using it (`crate::refresh`).
    pub async fn whispers(&self, store: &Store, app_id: &str) -> StoreResult<Arc<AppWhispers>> {
        let look = || {
            let Some(hit) = self.cache.lock().ok().and_then(|c| c.get(app_id).cloned()) else { return Look::Stale };
            let age = hit.loaded.elapsed();
            Look::of(hit, Some(age), CACHE_TTL)
        };
        self.refreshes.get(app_id, look, || self.load(store, app_id)).await
    }

    /// Reads the app's active whispers from the store into the cache.
    async fn load(&self, store: &Store, app_id: &str) -> StoreResult<Arc<AppWhispers>> {
        self.loads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let loaded = Instant::now();
        let rows = store.active_whispers(app_id).await?;
        let types = store.property_types(app_id).await?;
        let mut names: HashMap<String, String> = HashMap::new();
        let mut whispers = Vec::with_capacity(rows.len());
        for row in rows {
            let d = row.definition.0;
            let conditions: Result<Vec<Checked>, _> =
                d.conditions.iter().map(|c| c.check(|n| types.get(n).copied())).collect();
            let (Ok(conditions), Ok(text)) = (conditions, template::parse(&d.text)) else {
                tracing::warn!(whisper = %row.id, "an active whisper no longer checks; skipping it");
                continue;
            };
            let sender_name = match names.get(&d.sender_id) {
                Some(n) => n.clone(),
                None => {
                    let n = match store.teammate_by_id(&d.sender_id).await? {
                        Some(t) => t.name,
                        None => "The team".to_string(),
                    };
                    names.insert(d.sender_id.clone(), n.clone());
                    n
                }
            };
            whispers.push(LiveWhisper {
                id: row.id,
                revision: row.revision,
                trigger: d.trigger,
                push: d.push,
                all_users: d.all_users,
                conditions,
                raw_conditions: d.conditions.clone(),
                text,
                sender: CardSender { initials: initials(&sender_name), name: sender_name },
                buttons: d
                    .buttons
                    .into_iter()
                    .map(|b| match b.action {
                        ButtonAction::Link(url) => CardButton { label: b.label, kind: ButtonKind::Link, value: url },
                        ButtonAction::Reply(text) => {
                            CardButton { label: b.label, kind: ButtonKind::Reply, value: text }
                        }
                    })
                    .collect(),
            });
        }
        let office = store.office_hours(app_id).await?.and_then(|h| {
            let reply = template::parse(&h.reply).ok()?;
            Some(Office { schedule: Schedule::of(&h)?, reply })
        });
        let server_only = store.server_only_names(app_id).await?;
        if whispers.iter().any(|w| w.push) {
            self.any_push.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let sink = match self.skip_decisions.load(std::sync::atomic::Ordering::Relaxed) {
            true => None,
            false => self.sink.get().cloned(),
        };
        let fresh = Arc::new(AppWhispers { loaded, whispers, types, office, server_only, sink });
        if let Ok(mut c) = self.cache.lock() {
            c.insert(app_id.to_string(), fresh.clone());
        }
        Ok(fresh)
    }

    /// The plan for a user update in `app_id` (see `AppWhispers::plan_update`);
    /// `None` when no active whisper cares.
    pub async fn plan_update(
        &self,
        store: &Store,
        app_id: &str,
        now: i64,
        sent: bool,
        launch: bool,
    ) -> Option<UpdatePlan> {
        match self.whispers(store, app_id).await {
            Ok(live) if live.has_property_match() || (launch && live.fires(&Trigger::AppLaunch)) => {
                Some(Arc::new(move |user: &AppUserRow, received: &Received| {
                    live.plan_update(user, received, now, sent, launch)
                }) as UpdatePlan)
            }
            Ok(_) => None,
            Err(e) => {
                tracing::error!(error = %e, "loading the active whispers failed");
                None
            }
        }
    }

    /// The plan for `trigger` in `app_id`, to run on the user's row inside
    /// the write that causes it; `None` when no active whisper has that
    /// trigger (or the whispers could not be loaded: the fact is still
    /// stored, it fires nothing, and the failure is logged).
    pub async fn plan(
        &self,
        store: &Store,
        app_id: &str,
        trigger: Trigger,
        now: i64,
        sent: bool,
    ) -> Option<DeliveryPlan> {
        match self.whispers(store, app_id).await {
            Ok(live) => live.delivery_plan(trigger, now, sent),
            Err(e) => {
                tracing::error!(error = %e, "loading the active whispers failed");
                None
            }
        }
    }
}
