//! A user's timeline on their profile: events, whisper cards, manual
//! messages (pending ones marked: the team sees them, the user does not
//! yet), conversation messages, conversation starts and changes, newest
//! first, 50 a page ("Older" loads the next). A card no one has seen yet
//! can be recalled from here. Everything a user typed is shown as text;
//! a card's body is the template engine's sanitised HTML (as in the widget).

use std::collections::HashSet;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::widgets::{Loading, PageError};
use crate::{domain::format_date, error::AppError};

/// One item as the profile shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// `event`, `card`, `manual`, `message`, `conversation` or `change`.
    pub kind: String,
    pub id: String,
    pub at: i64,
    /// What happened, in a line.
    pub headline: String,
    /// Words someone typed (shown as text).
    pub text: Option<String>,
    /// A card's body: the template engine's sanitised HTML.
    pub html: Option<String>,
    /// An event's properties (JSON, shown as text).
    pub detail: Option<String>,
    pub state: Option<String>,
    /// The delivery's times: ("sent", at), ("seen", at)…
    pub times: Vec<(String, i64)>,
    /// Not shown to the user yet (the team sees it; the user does not).
    pub pending: bool,
    /// An in-app card no one has seen yet.
    pub recallable: bool,
    /// Where it lives in the dashboard, under the app (`whispers/…`).
    pub link: Option<String>,
    /// Anything else worth saying (who recalled it, why it failed).
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineView {
    pub entries: Vec<TimelineEntry>,
    /// The cursor of the next (older) page.
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineInput {
    pub app_id: String,
    /// The user's murmur id or userId.
    pub user: String,
    /// "" for the newest page.
    pub before: String,
}

#[server(prefix = "/api", endpoint = "users/timeline", output = crate::wire::Json)]
pub async fn load_timeline(input: TimelineInput) -> Result<TimelineView, AppError> {
    use crate::server::{request, timeline};
    request::as_teammate(|state, me| async move {
        let (_, page) = timeline::page(&state, &me, &input.app_id, &input.user, &input.before).await?;
        Ok(TimelineView {
            entries: page.items.into_iter().map(convert::entry).collect(),
            next: page.next.map(|c| c.encode()),
        })
    })
    .await
}

#[cfg(feature = "ssr")]
mod convert {
    use super::TimelineEntry;
    use crate::{
        domain::template,
        storage::timeline::{TimelineCard, TimelineItem, TimelineManual},
    };

    /// A card's sanitised HTML from its stored JSON.
    fn card_html(rendered: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(rendered).ok()?;
        v.get("html").and_then(|h| h.as_str()).map(str::to_string)
    }

    fn times(list: &[(&str, Option<i64>)]) -> Vec<(String, i64)> {
        list.iter().filter_map(|(k, t)| t.map(|t| (k.to_string(), t))).collect()
    }

    fn recallable(state: &str, seen_at: Option<i64>) -> bool {
        matches!(state, "pending" | "sent") && seen_at.is_none()
    }

    fn recalled(at: Option<i64>, by: &Option<String>) -> Option<String> {
        at.map(|at| match by {
            Some(by) => format!("Recalled by {by} on {}", crate::domain::format_date(at)),
            None => format!("Recalled on {}", crate::domain::format_date(at)),
        })
    }

    fn card(c: TimelineCard) -> TimelineEntry {
        TimelineEntry {
            kind: "card".into(),
            headline: format!("Whisper “{}”", c.whisper_name),
            text: None,
            html: card_html(&c.rendered),
            detail: None,
            pending: c.state == "pending",
            recallable: recallable(&c.state, c.seen_at),
            times: times(&[
                ("sent", c.sent_at),
                ("seen", c.seen_at),
                ("clicked", c.clicked_at),
                ("replied", c.replied_at),
                ("recalled", c.recalled_at),
            ]),
            link: Some(format!("whispers/{}", c.whisper_id)),
            note: recalled(c.recalled_at, &c.recalled_by).or(c.sent_via.map(|v| format!("Sent by {v}"))),
            state: Some(c.state),
            id: c.id,
            at: c.created_at,
        }
    }

    fn manual(m: TimelineManual) -> TimelineEntry {
        let kind = match m.kind.as_str() {
            "announcement" => "in-app announcement",
            "email" => "email",
            _ => "in-app chat",
        };
        // Not rendered yet (pending): the message as written, placeholders at their fallbacks.
        let html = match &m.rendered {
            Some(r) => card_html(r),
            None => template::parse(&m.body).ok().map(|s| template::render_html(&s, |_| None)),
        };
        let note = recalled(m.recalled_at, &m.recalled_by)
            .or(m.error.map(|e| format!("Email error: {e}")))
            .or(m.sent_via.map(|v| format!("Sent by {v}")));
        TimelineEntry {
            kind: "manual".into(),
            headline: format!("Message “{}” ({kind})", m.title),
            text: None,
            html,
            detail: None,
            pending: m.state == "pending",
            recallable: m.channel == "in_app" && recallable(&m.state, m.seen_at),
            times: times(&[
                ("sent", m.sent_at),
                ("seen", m.seen_at),
                ("clicked", m.clicked_at),
                ("replied", m.replied_at),
                ("failed", m.failed_at),
                ("recalled", m.recalled_at),
            ]),
            link: Some(format!("messages/{}", m.message_id)),
            note,
            state: Some(m.state),
            id: m.id,
            at: m.created_at,
        }
    }

    pub fn entry(item: TimelineItem) -> TimelineEntry {
        let plain = |kind: &str, id: String, at: i64, headline: String| TimelineEntry {
            kind: kind.into(),
            id,
            at,
            headline,
            text: None,
            html: None,
            detail: None,
            state: None,
            times: vec![],
            pending: false,
            recallable: false,
            link: None,
            note: None,
        };
        match item {
            TimelineItem::Card(c) => card(c),
            TimelineItem::Manual(m) => manual(m),
            TimelineItem::Event(e) => TimelineEntry {
                detail: e.properties,
                ..plain("event", e.id.to_string(), e.created_at, format!("Event “{}”", e.name))
            },
            TimelineItem::Message(m) => {
                let headline = if m.role == "appUser" {
                    "The user wrote".to_string()
                } else {
                    format!("{} wrote", m.name.as_deref().unwrap_or("The team"))
                };
                TimelineEntry {
                    text: Some(m.text),
                    link: m.conversation_id.map(|c| format!("inbox/{c}")),
                    ..plain("message", m.id, m.created_at, headline)
                }
            }
            TimelineItem::Conversation(c) => {
                let by = match c.started_by.as_str() {
                    "user" => "by the user".to_string(),
                    "card" => "by the user answering a card".to_string(),
                    _ => format!("by {}", c.starter_name.as_deref().unwrap_or("a teammate")),
                };
                TimelineEntry {
                    link: Some(format!("inbox/{}", c.id)),
                    ..plain("conversation", c.id, c.created_at, format!("Conversation started {by}"))
                }
            }
            TimelineItem::Change(x) => {
                let headline = match (x.change.as_str(), x.by_whom.as_str()) {
                    ("closed", _) => "Conversation closed".to_string(),
                    ("reopened", "user") => "Conversation reopened by the user's message".to_string(),
                    ("reopened", _) => "Conversation reopened".to_string(),
                    ("assigned", _) => {
                        format!(
                            "Conversation assigned to {}",
                            x.assignee_name.as_deref().unwrap_or("a former teammate")
                        )
                    }
                    _ => "Conversation unassigned".to_string(),
                };
                TimelineEntry {
                    link: Some(format!("inbox/{}", x.conversation_id)),
                    ..plain("change", x.id.to_string(), x.at, headline)
                }
            }
        }
    }
}

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "event" => "Event",
        "card" => "Whisper",
        "manual" => "Message",
        "message" => "Conversation message",
        "conversation" | "change" => "Conversation",
        _ => "",
    }
}

/// The timeline panel of a user's profile. Built in the browser only (like
/// the inbox: it pages and changes in place); the server sends "Loading…".
#[component]
pub fn UserTimeline(app_id: String, user: String) -> impl IntoView {
    let mounted = RwSignal::new(false);
    Effect::new(move |_| mounted.set(true));
    let (app, who) = (StoredValue::new(app_id), StoredValue::new(user));
    view! {
        <section class="panel" aria-labelledby="timeline-h">
            <h2 id="timeline-h">"Timeline"</h2>
            <Show when=move || mounted.get() fallback=Loading>
                <TimelineList app_id=app.get_value() user=who.get_value()/>
            </Show>
        </section>
    }
}

#[component]
fn TimelineList(app_id: String, user: String) -> impl IntoView {
    let input = TimelineInput { app_id: app_id.clone(), user: user.clone(), before: String::new() };
    let first = Resource::new(move || input.clone(), load_timeline);
    // Older pages, appended as they load; the cursor of the page after them.
    let older = RwSignal::new(Vec::<TimelineEntry>::new());
    let next = RwSignal::new(None::<Option<String>>);
    let more = ServerAction::<LoadTimeline>::new();
    Effect::new(move |_| {
        if let Some(Ok(page)) = more.value().get() {
            older.update(|o| o.extend(page.entries));
            next.set(Some(page.next));
        }
    });
    let recall = ServerAction::<super::recall::RecallCard>::new();
    let recalled = RwSignal::new(HashSet::<String>::new());
    // The id being recalled, kept after the call (the action forgets its input).
    let recalling = RwSignal::new(String::new());
    Effect::new(move |_| {
        if let Some(Ok(())) = recall.value().get() {
            let id = recalling.get_untracked();
            recalled.update(|r| {
                r.insert(id);
            });
        }
    });
    let recall_error = Signal::derive(move || recall.value().get().and_then(|r| r.err()));
    let app = StoredValue::new(app_id);
    let who = StoredValue::new(user);
    let row = move |e: TimelineEntry| {
        let id = e.id.clone();
        let gone = {
            let id = id.clone();
            move || recalled.with(|r| r.contains(&id))
        };
        let state_of = {
            let (gone, state) = (gone.clone(), e.state.clone());
            move || if gone() { Some("cancelled".to_string()) } else { state.clone() }
        };
        let state_text = state_of.clone();
        let times = e.times.iter().map(|(k, t)| format!("{k} {}", format_date(*t))).collect::<Vec<_>>().join(" · ");
        let href = e.link.as_ref().map(|l| format!("/apps/{}/{l}", app.get_value()));
        let recallable = e.recallable;
        view! {
            <li class="timeline-item" data-kind=e.kind.clone() data-testid="timeline-item"
                data-state=state_of>
                <p class="timeline-head">
                    <span class="muted">{format_date(e.at)}" · "{kind_label(&e.kind)}</span>
                    " "
                    {match href {
                        Some(h) => view! { <a href=h>{e.headline.clone()}</a> }.into_any(),
                        None => view! { <strong>{e.headline.clone()}</strong> }.into_any(),
                    }}
                    {e.pending.then(|| view! { " " <span class="badge pending" data-testid="timeline-pending">"pending — not yet shown to the user"</span> })}
                </p>
                {e.text.clone().map(|t| view! { <p class="message-text">{t}</p> })}
                {e.html.clone().map(|h| view! { <div class="message-text timeline-card" inner_html=h></div> })}
                {e.detail.clone().map(|d| view! { <code class="event-props">{d}</code> })}
                {move || state_text().map(|s| view! {
                    <p class="muted timeline-state">"State: "{s}{if times.is_empty() { String::new() } else { format!(" · {times}") }}</p>
                })}
                {e.note.clone().map(|n| view! { <p class="muted">{n}</p> })}
                {move || (recallable && !gone()).then(|| {
                    let id = id.clone();
                    view! {
                        <button type="button" class="link-button" data-testid="recall-card" on:click=move |_| {
                            recalling.set(id.clone());
                            let input = super::recall::RecallInput { app_id: app.get_value(), id: id.clone() };
                            recall.dispatch(super::recall::RecallCard { input });
                        }>"Recall"</button>
                    }
                })}
            </li>
        }
    };
    view! {
            {move || recall_error.get().map(|e| view! { <p class="form-error" role="alert">{e.to_string()}</p> })}
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match first.await {
                        Ok(page) => {
                            let first_next = page.next.clone();
                            let cursor = move || next.get().unwrap_or_else(|| first_next.clone());
                            let empty = page.entries.is_empty();
                            view! {
                                {empty.then(|| view! { <p class="muted">"Nothing yet."</p> })}
                                <ol class="timeline" data-testid="timeline">
                                    {page.entries.into_iter().map(row).collect_view()}
                                    {move || older.get().into_iter().map(row).collect_view()}
                                </ol>
                                {move || cursor().map(|before| view! {
                                    <button type="button" disabled=move || more.pending().get() on:click=move |_| {
                                        let input = TimelineInput { app_id: app.get_value(), user: who.get_value(), before: before.clone() };
                                        more.dispatch(LoadTimeline { input });
                                    }>"Older"</button>
                                })}
                            }.into_any()
                        }
                        Err(error) => view! { <PageError error/> }.into_any(),
                    }
                })}
            </Suspense>
    }
}
