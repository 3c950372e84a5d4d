//! Manual messages: the list (tabs sent / scheduled / drafts / stopped,
//! search by title or sender as you type, stats), the composer (kind,
//! sender, title, personalised body with a live preview, audience: the
//! selected users or conditions with a live count, send now / schedule /
//! draft) and a message's page (progress, recipients, the conversations it
//! started, stop).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};
use serde::{Deserialize, Serialize};

use super::{
    frame::use_app_id,
    preview::{MessengerMessage, NotificationCard},
    users::ConditionBuilder,
    whispers::{preview_audience, AudienceInput},
    widgets::{Loading, PageError},
};
use crate::{
    domain::{
        format_date,
        manual::{Audience, Kind, MessageDraft, Tab},
        template,
        whisper::lookup,
    },
    error::AppError,
    models::{ManualComposer, ManualDetail, ManualSummary},
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListInput {
    pub app_id: String,
    pub tab: String,
    pub search: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRef {
    pub app_id: String,
    /// "new" for a message not saved yet.
    pub message_id: String,
    /// A new message's selected users (comma-separated murmur ids).
    #[serde(default)]
    pub users: String,
}

/// A message's page: the composer while it can change, else its results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MessagePage {
    Composer(ManualComposer),
    Detail(ManualDetail),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaveMessageInput {
    pub app_id: String,
    pub message_id: String,
    /// The `MessageDraft` as JSON.
    pub draft: String,
    /// `draft`, `now`, or `at`.
    pub mode: String,
    /// With `at`: `YYYY-MM-DDTHH:MM` in the app's time zone.
    #[serde(default)]
    pub send_at: String,
}

#[server(prefix = "/api", endpoint = "messages/list", output = crate::wire::Json)]
pub async fn list_messages(input: ListInput) -> Result<Vec<ManualSummary>, AppError> {
    use crate::server::{manual, request};
    request::as_teammate(|state, me| async move {
        manual::list(&state, &me, &input.app_id, Tab::parse(&input.tab), &input.search).await
    })
    .await
}

#[server(prefix = "/api", endpoint = "messages/load", output = crate::wire::Json)]
pub async fn load_message(input: MessageRef) -> Result<MessagePage, AppError> {
    use crate::server::{manual, request};
    request::as_teammate(|state, me| async move {
        if input.message_id == "new" {
            let users: Vec<String> =
                input.users.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
            return Ok(MessagePage::Composer(manual::composer(&state, &me, &input.app_id, None, &users).await?));
        }
        let c = manual::composer(&state, &me, &input.app_id, Some(&input.message_id), &[]).await?;
        if c.state == "draft" || c.state == "scheduled" {
            Ok(MessagePage::Composer(c))
        } else {
            Ok(MessagePage::Detail(manual::detail(&state, &me, &input.app_id, &input.message_id).await?))
        }
    })
    .await
}

#[server(prefix = "/api", endpoint = "messages/detail", output = crate::wire::Json)]
pub async fn message_detail(input: MessageRef) -> Result<ManualDetail, AppError> {
    use crate::server::{manual, request};
    request::as_teammate(|state, me| async move { manual::detail(&state, &me, &input.app_id, &input.message_id).await })
        .await
}

#[server(prefix = "/api", endpoint = "messages/save", output = crate::wire::Json)]
pub async fn save_message(input: SaveMessageInput) -> Result<String, AppError> {
    use crate::server::{manual, request};
    request::as_teammate(|state, me| async move {
        let draft: MessageDraft = serde_json::from_str(&input.draft)
            .map_err(|_| AppError::Field { field: "form".into(), message: "The message could not be read.".into() })?;
        let mode = match input.mode.as_str() {
            "draft" => manual::SendMode::Draft,
            "now" => manual::SendMode::Now,
            "at" => manual::SendMode::At(input.send_at.clone()),
            _ => return Err(AppError::Field { field: "form".into(), message: "Choose how to send it.".into() }),
        };
        let id = (input.message_id != "new").then_some(input.message_id.as_str());
        manual::save(&state, &me, &input.app_id, id, draft, mode).await
    })
    .await
}

#[server(prefix = "/api", endpoint = "messages/stop", output = crate::wire::Json)]
pub async fn stop_message(input: MessageRef) -> Result<(), AppError> {
    use crate::server::{manual, request};
    request::as_teammate(|state, me| async move { manual::stop(&state, &me, &input.app_id, &input.message_id).await })
        .await
}

#[server(prefix = "/api", endpoint = "messages/delete", output = crate::wire::Json)]
pub async fn delete_message(input: MessageRef) -> Result<(), AppError> {
    use crate::server::{manual, request};
    request::as_teammate(|state, me| async move { manual::delete(&state, &me, &input.app_id, &input.message_id).await })
        .await
}

fn kind_label(kind: &str) -> &'static str {
    Kind::parse(kind).map(Kind::label).unwrap_or("Message")
}

fn stats_line(m: &ManualSummary) -> String {
    let mut parts = vec![format!("{} sent", m.sent), format!("{} seen", m.seen), format!("{} clicked", m.clicked)];
    parts.push(format!("{} replied", m.replied));
    if m.failed > 0 || m.kind == "email" {
        parts.push(format!("{} failed", m.failed));
    }
    parts.join(" · ")
}

#[component]
pub fn MessagesPage() -> impl IntoView {
    let app_id = use_app_id();
    let query = use_query_map();
    let tab = Memo::new(move |_| Tab::parse(&query.read().get("tab").unwrap_or_default()));
    let search = RwSignal::new(String::new());
    // Loaded in the browser as the search is typed.
    let list = LocalResource::new(move || {
        list_messages(ListInput { app_id: app_id.get(), tab: tab.get().as_str().into(), search: search.get() })
    });
    view! {
        <Title text="Messages"/>
        <h1>"Messages"</h1>
        <p><a class="button" href=move || format!("/apps/{}/messages/new", app_id.get())>"New message"</a></p>
        <nav class="tabs" aria-label="Messages by state">
            {Tab::ALL.into_iter().map(|t| view! {
                <a href=move || format!("/apps/{}/messages?tab={}", app_id.get(), t.as_str())
                   aria-current=move || (tab.get() == t).then_some("page")>{t.label()}</a>
            }).collect_view()}
        </nav>
        <div class="panel">
            <div class="field">
                <label for="msg-search">"Search by title or sender"</label>
                <input id="msg-search" type="search" on:input=move |ev| search.set(event_target_value(&ev))/>
            </div>
            {move || match list.get() {
                None => view! { <Loading/> }.into_any(),
                Some(Err(error)) => view! { <PageError error/> }.into_any(),
                Some(Ok(rows)) if rows.is_empty() => view! { <p class="muted" role="status">"No messages here."</p> }.into_any(),
                Some(Ok(rows)) => view! {
                    <table class="messages">
                        <thead><tr><th scope="col">"Title"</th><th scope="col">"Kind"</th><th scope="col">"From"</th><th scope="col">"Audience"</th><th scope="col">"Results"</th><th scope="col">"When"</th></tr></thead>
                        <tbody>
                            {rows.into_iter().map(|m| {
                                let href = format!("/apps/{}/messages/{}", app_id.get_untracked(), m.id);
                                let audience = match m.recipients {
                                    Some(n) => format!("{n} recipients"),
                                    None => m.audience.clone(),
                                };
                                view! {
                                    <tr data-state=m.state.clone()>
                                        <td><a href=href>{m.title.clone()}</a></td>
                                        <td>{kind_label(&m.kind)}</td>
                                        <td>{m.sender_name.clone()}</td>
                                        <td>{audience}</td>
                                        <td>{stats_line(&m)}</td>
                                        <td>{m.send_at.map(format_date).unwrap_or_else(|| format_date(m.updated_at))}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any(),
            }}
        </div>
    }
}

#[component]
pub fn MessagePage() -> impl IntoView {
    let app_id = use_app_id();
    let params = use_params_map();
    let query = use_query_map();
    let message_id = Memo::new(move |_| params.read().get("message_id").unwrap_or_default());
    let users = Memo::new(move |_| query.read().get("users").unwrap_or_default());
    let data = Resource::new(
        move || MessageRef { app_id: app_id.get(), message_id: message_id.get(), users: users.get() },
        load_message,
    );
    // Like the whisper editor: built once the page is interactive.
    let mounted = RwSignal::new(false);
    Effect::new(move |_| mounted.set(true));
    view! {
        <Title text="Message"/>
        <Show when=move || mounted.get() fallback=Loading>
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(MessagePage::Composer(c)) => message_composer(c).await,
                        Ok(MessagePage::Detail(d)) => message_results(app_id.get_untracked(), d).await,
                        Err(error) => view! { <PageError error/> }.into_any(),
                    }
                })}
            </Suspense>
        </Show>
    }
}

// The route's two faces, each a part of the page loaded when shown
// (`#[lazy]`; ARCHITECTURE.md, "Parts of pages"): a draft's composer and a
// sent message's results with its "Why?" panel. Each is declared with its
// page in `pages::PAGE_PARTS`.

#[lazy]
fn message_composer(c: ManualComposer) -> AnyView {
    view! { <Composer c/> }.into_any()
}

#[lazy]
fn message_results(app_id: String, d: ManualDetail) -> AnyView {
    let id = d.summary.id.clone();
    view! { <Detail d/> <super::explain::WhyForSubject app_id kind="message" id/> }.into_any()
}

#[component]
fn Composer(c: ManualComposer) -> impl IntoView {
    let app_id = use_app_id();
    let navigate = use_navigate();
    let d = c.draft.clone();
    let id = c.id.clone();
    let title = RwSignal::new(d.title.clone());
    let sender_id = RwSignal::new(d.sender_id.clone());
    let kind = RwSignal::new(d.kind);
    let body = RwSignal::new(d.body.clone());
    let push = RwSignal::new(d.push);
    let (initial_users, initial_conditions, initial_not_received) = match &d.audience {
        Audience::Users { ids } => (ids.clone(), vec![], String::new()),
        Audience::Segment { conditions, not_received } => {
            (vec![], conditions.clone(), not_received.first().cloned().unwrap_or_default())
        }
    };
    let selected = c.selected.clone();
    let use_selection = RwSignal::new(!initial_users.is_empty());
    let has_selection = !initial_users.is_empty();
    let conditions = RwSignal::new(initial_conditions);
    let not_received = RwSignal::new(initial_not_received);
    let properties = RwSignal::new(c.properties.clone());
    let send_at = RwSignal::new(c.send_at_local.clone());
    let teammates = c.teammates.clone();
    let selected_ids: Vec<String> = selected.iter().map(|u| u.id.clone()).collect();

    let draft = move || MessageDraft {
        title: title.get(),
        sender_id: sender_id.get(),
        kind: kind.get(),
        body: body.get(),
        push: push.get() && kind.get() != Kind::Email,
        audience: if use_selection.get() {
            Audience::Users { ids: selected_ids.clone() }
        } else {
            let n = not_received.get();
            Audience::Segment {
                conditions: conditions.get(),
                not_received: if n.is_empty() { vec![] } else { vec![n] },
            }
        },
    };
    let count = LocalResource::new(move || {
        let input = AudienceInput {
            app_id: app_id.get(),
            all_users: conditions.with(|c| c.is_empty()),
            conditions: serde_json::to_string(&conditions.get()).unwrap_or_default(),
        };
        preview_audience(input)
    });
    let preview_user = RwSignal::new(String::new());
    let parsed = Memo::new(move |_| template::parse(&body.get()));
    let html = Signal::derive(move || match parsed.get() {
        Ok(segs) => {
            let who = preview_user.get();
            let values = if who.is_empty() {
                Vec::new()
            } else {
                count
                    .get()
                    .and_then(|r| r.ok())
                    .and_then(|a| a.samples.into_iter().find(|u| u.id == who))
                    .map(|u| u.values)
                    .unwrap_or_default()
            };
            template::render_html(&segs, |n| lookup(&values, n))
        }
        Err(_) => template::render_html(&[template::Segment::Text(body.get())], |_| None),
    });
    let sender = {
        let teammates = teammates.clone();
        Signal::derive(move || {
            teammates
                .iter()
                .find(|t| t.id == sender_id.get())
                .map(|t| (t.name.clone(), t.initials.clone()))
                .unwrap_or_else(|| ("Your team".into(), "?".into()))
        })
    };
    let no_buttons = Signal::derive(Vec::new);

    let save = ServerAction::<SaveMessage>::new();
    let error = Signal::derive(move || save.value().get().and_then(|r| r.err()));
    let field = move |f: &'static str| move || error.get().and_then(|e| e.field_message(f));
    Effect::new(move |_| {
        if let Some(Ok(saved)) = save.value().get() {
            navigate(&format!("/apps/{}/messages/{saved}", app_id.get_untracked()), Default::default());
        }
    });
    let message_id = id.clone().unwrap_or_else(|| "new".into());
    let do_save = move |mode: &'static str| {
        save.dispatch(SaveMessage {
            input: SaveMessageInput {
                app_id: app_id.get_untracked(),
                message_id: message_id.clone(),
                draft: serde_json::to_string(&draft()).unwrap_or_default(),
                mode: mode.into(),
                send_at: send_at.get_untracked(),
            },
        });
    };
    let do_save2 = do_save.clone();
    let do_save3 = do_save.clone();
    let earlier = c.earlier.clone();
    let email_ready = c.email_ready;
    let zone = c.time_zone.clone();
    let n_selected = selected.len();

    view! {
        <h1>{if id.is_some() { "Edit message" } else { "New message" }}</h1>
        <p class="muted">"State: " <span class=format!("status status-{}", c.state)>{c.state.clone()}</span></p>
        <div class="editor">
            <div class="editor-form">
                <section class="panel">
                    <div class="field">
                        <label for="m-kind">"Kind"</label>
                        <select id="m-kind" on:change=move |ev| kind.set(Kind::parse(&event_target_value(&ev)).unwrap_or(Kind::Chat))>
                            {Kind::ALL.into_iter().map(|k| view! { <option value=k.as_str() selected=move || kind.get() == k>{k.label()}</option> }).collect_view()}
                        </select>
                        <p class="field-error" aria-live="polite">{field("kind")}</p>
                        <Show when=move || kind.get() == Kind::Email && !email_ready>
                            <p class="hint" role="note">"Email is off for this app: set up SMTP in Settings to send it."</p>
                        </Show>
                        <Show when=move || kind.get() != Kind::Email>
                            <label class="check">
                                <input type="checkbox" data-testid="message-push" prop:checked=move || push.get()
                                    on:change=move |ev| push.set(event_target_checked(&ev))/>
                                " Also send as a push notification to recipients who are not online"
                            </label>
                        </Show>
                    </div>
                    <div class="field">
                        <label for="m-title">{move || if kind.get() == Kind::Email { "Subject" } else { "Title" }}</label>
                        <input id="m-title" prop:value=move || title.get() on:input=move |ev| title.set(event_target_value(&ev))/>
                        <p class="field-error" aria-live="polite">{field("title")}</p>
                    </div>
                    <div class="field">
                        <label for="m-sender">"From"</label>
                        <select id="m-sender" on:change=move |ev| sender_id.set(event_target_value(&ev))>
                            {teammates.iter().map(|t| {
                                let tid = t.id.clone();
                                view! { <option value=t.id.clone() selected=move || sender_id.get() == tid>{t.name.clone()}</option> }
                            }).collect_view()}
                        </select>
                        <p class="field-error" aria-live="polite">{field("sender")}</p>
                    </div>
                </section>
                <section class="panel" aria-labelledby="m-aud-h">
                    <h2 id="m-aud-h">"Audience"</h2>
                    {has_selection.then(|| view! {
                        <div class="radio-row" role="radiogroup" aria-label="Who receives it">
                            <input type="radio" id="m-aud-sel" name="m-aud" prop:checked=move || use_selection.get() on:change=move |_| use_selection.set(true)/>
                            <label for="m-aud-sel">{format!("The {n_selected} selected {}", if n_selected == 1 { "user" } else { "users" })}</label>
                            <input type="radio" id="m-aud-cond" name="m-aud" prop:checked=move || !use_selection.get() on:change=move |_| use_selection.set(false)/>
                            <label for="m-aud-cond">"Users who match conditions"</label>
                        </div>
                    })}
                    <div hidden=move || !use_selection.get()>
                        <ul class="chips" aria-label="Selected users">
                            {selected.iter().map(|u| view! { <li>{u.name.clone()}</li> }).collect_view()}
                        </ul>
                    </div>
                    <div hidden=move || use_selection.get()>
                        <p class="hint">"Evaluated when the message is sent: users who match later never get it. No conditions: all users."</p>
                        <ConditionBuilder conditions properties on_change=Callback::new(|_| ())/>
                        <div class="field">
                            <label for="m-not-received">"Only users who have not received"</label>
                            <select id="m-not-received" on:change=move |ev| not_received.set(event_target_value(&ev))>
                                <option value="" selected=move || not_received.get().is_empty()>"(no such rule)"</option>
                                {earlier.iter().map(|(mid, t)| {
                                    let m2 = mid.clone();
                                    view! { <option value=mid.clone() selected=move || not_received.get() == m2>{t.clone()}</option> }
                                }).collect_view()}
                            </select>
                        </div>
                        {move || match count.get() {
                            None => view! { <p class="count" role="status">"Counting users…"</p> }.into_any(),
                            Some(Ok(a)) => view! { <p class="count" role="status">{format!("{} {} match now", a.count, if a.count == 1 { "user" } else { "users" })}</p> }.into_any(),
                            Some(Err(e)) => view! { <p class="field-error" role="alert">{e.field_message("conditions").unwrap_or_else(|| e.to_string())}</p> }.into_any(),
                        }}
                    </div>
                    <p class="field-error" aria-live="polite">{field("audience")}</p>
                </section>
                <section class="panel" aria-labelledby="m-body-h">
                    <h2 id="m-body-h">"Message"</h2>
                    <div class="field">
                        <label for="m-body">"Text"</label>
                        <p class="hint" id="m-body-hint">"Personalise with {{ firstName || there }}. Style with **bold**, *italic*, [links](https://…), lines starting with “- ” for lists."</p>
                        <textarea id="m-body" rows="6" aria-describedby="m-body-hint" prop:value=move || body.get() on:input=move |ev| body.set(event_target_value(&ev))></textarea>
                        <p class="field-error" aria-live="polite">{move || parsed.get().err().map(|e| e.to_string()).or_else(field("body"))}</p>
                    </div>
                </section>
                <section class="panel" aria-labelledby="m-send-h">
                    <h2 id="m-send-h">"Send"</h2>
                    <div class="field">
                        <label for="m-send-at">{format!("Schedule for (time zone {zone})")}</label>
                        <input id="m-send-at" type="datetime-local" prop:value=move || send_at.get() on:input=move |ev| send_at.set(event_target_value(&ev))/>
                        <p class="field-error" aria-live="polite">{field("send_at")}</p>
                    </div>
                    <div class="actions">
                        {move || error.get().and_then(|e| e.form_message()).map(|m| view! { <p class="form-error" role="alert">{m}</p> })}
                        <button type="button" on:click=move |_| do_save("now")>"Send now"</button>
                        <button type="button" on:click=move |_| do_save2("at")>"Schedule"</button>
                        <button type="button" on:click=move |_| do_save3("draft")>"Save draft"</button>
                        <p role="status" class="muted">{move || if save.pending().get() { "Saving…" } else { "" }}</p>
                    </div>
                </section>
            </div>
            <aside class="editor-preview" aria-labelledby="m-prev-h">
                <h2 id="m-prev-h">"Preview"</h2>
                <div class="field">
                    <label for="m-preview-user">"Personalise as"</label>
                    <select id="m-preview-user" on:change=move |ev| preview_user.set(event_target_value(&ev))>
                        <option value="">"Nobody (show fallbacks)"</option>
                        {move || count.get().and_then(|r| r.ok()).map(|a| a.samples).unwrap_or_default().into_iter()
                            .map(|s| view! { <option value=s.id.clone()>{s.name.clone()}</option> }).collect_view()}
                    </select>
                </div>
                {move || if kind.get() == Kind::Announcement {
                    view! { <NotificationCard sender html buttons=no_buttons/> }.into_any()
                } else {
                    view! { <MessengerMessage sender html buttons=no_buttons/> }.into_any()
                }}
            </aside>
        </div>
    }
}

#[component]
fn Detail(d: ManualDetail) -> impl IntoView {
    let app_id = use_app_id();
    let id = d.summary.id.clone();
    // Progress and stats refresh while the page is open.
    let tick = RwSignal::new(0u32);
    #[cfg(feature = "hydrate")]
    {
        if let Ok(handle) =
            set_interval_with_handle(move || tick.update(|t| *t = t.wrapping_add(1)), std::time::Duration::from_secs(2))
        {
            on_cleanup(move || handle.clear());
        }
    }
    let live = {
        let id = id.clone();
        LocalResource::new(move || {
            tick.get();
            message_detail(MessageRef { app_id: app_id.get(), message_id: id.clone(), users: String::new() })
        })
    };
    let current = Signal::derive({
        let d = d.clone();
        move || live.get().and_then(|r| r.ok()).unwrap_or_else(|| d.clone())
    });
    let stop = ServerAction::<StopMessage>::new();
    let stop_id = StoredValue::new(id.clone());
    let confirming = RwSignal::new(false);
    Effect::new(move |_| {
        if let Some(Ok(())) = stop.value().get() {
            tick.update(|t| *t = t.wrapping_add(1));
        }
    });
    let stop_error = Signal::derive(move || stop.value().get().and_then(|r| r.err()));
    let body_html = template::parse(&d.body).map(|s| template::render_html(&s, |_| None)).unwrap_or_default();
    view! {
        <h1>{move || current.get().summary.title}</h1>
        <p class="muted">
            {move || { let s = current.get().summary; format!("{} from {} · {}", kind_label(&s.kind), s.sender_name, s.audience) }}
            " · state: " <span class=move || format!("status status-{}", current.get().summary.state) data-testid="message-state">{move || current.get().summary.state}</span>
        </p>
        <section class="panel" aria-labelledby="prog-h">
            <h2 id="prog-h">"Progress"</h2>
            {move || {
                let s = current.get().summary;
                let total = s.recipients.unwrap_or(0);
                let done = s.sent + s.failed;
                view! {
                    <progress max=total.max(1) value=done aria-label="Delivered so far"></progress>
                    <p role="status" data-testid="message-stats">
                        {match s.recipients {
                            Some(n) => format!("{n} {} · {}", if n == 1 { "recipient" } else { "recipients" }, stats_line(&s)),
                            None => "Recipients are fixed when the send starts.".to_string(),
                        }}
                        {(s.pending > 0).then(|| format!(" · {} waiting for their next visit", s.pending))}
                        {(s.cancelled > 0).then(|| format!(" · {} cancelled by the stop", s.cancelled))}
                    </p>
                }
            }}
            <Show when=move || current.get().stoppable>
                <Show when=move || confirming.get() fallback=move || view! {
                    <button type="button" on:click=move |_| confirming.set(true)>"Stop"</button>
                }>
                    <div class="secret-once" role="alertdialog" aria-label="Stop this message">
                        <p>"Nobody new will receive this message, and it can never be resumed. Those who already have it keep it."</p>
                        <button type="button" on:click=move |_| {
                            confirming.set(false);
                            let input = MessageRef { app_id: app_id.get_untracked(), message_id: stop_id.get_value(), users: String::new() };
                            stop.dispatch(StopMessage { input });
                        }>"Stop for good"</button>
                        <button type="button" class="link-button" on:click=move |_| confirming.set(false)>"Cancel"</button>
                    </div>
                </Show>
            </Show>
            {move || stop_error.get().map(|e| view! { <p class="form-error" role="alert">{e.to_string()}</p> })}
            <Show when=move || current.get().summary.state != "draft"><super::recall::RecallMessage message_id=stop_id.get_value() kind=current.get_untracked().summary.kind/></Show>
        </section>
        <section class="panel" aria-labelledby="body-h">
            <h2 id="body-h">"Message"</h2>
            <div class="message-text" inner_html=body_html></div>
        </section>
        <section class="panel" aria-labelledby="conv-started-h">
            <h2 id="conv-started-h">"Conversations it started"</h2>
            {move || {
                let d = current.get();
                let users = d.replied_users;
                if users.is_empty() {
                    view! { <p class="muted">"No replies yet."</p> }.into_any()
                } else {
                    view! { <ul>{users.into_iter().map(|u| {
                        // The conversation in the inbox, else the user's profile.
                        let href = match d.conversations.iter().find(|(user, _)| *user == u.id) {
                            Some((_, c)) => format!("/apps/{}/inbox/{c}", app_id.get_untracked()),
                            None => format!("/apps/{}/users/{}", app_id.get_untracked(), u.id),
                        };
                        view! { <li><a href=href>{u.name}</a></li> }
                    }).collect_view()}</ul> }.into_any()
                }
            }}
        </section>
        <section class="panel" aria-labelledby="rcpt-h">
            <h2 id="rcpt-h">"Recipients"</h2>
            <table>
                <thead><tr><th scope="col">"User"</th><th scope="col">"State"</th><th scope="col">"Sent"</th></tr></thead>
                <tbody>
                    {move || current.get().recipients.into_iter().map(|r| view! {
                        <tr>
                            <td><a href=format!("/apps/{}/users/{}", app_id.get_untracked(), r.app_user_id)>{r.name}</a></td>
                            <td>{r.state}{r.error.map(|e| format!(" ({e})"))}</td>
                            <td>{r.sent_at.map(format_date).unwrap_or_default()}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
}
