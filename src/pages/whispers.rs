//! Whisper authoring: the list (status, stats, pause/resume/duplicate/
//! delete, templates) and the editor (audience with a live count, trigger,
//! personalised message with live previews, sender, action buttons).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};
use serde::{Deserialize, Serialize};

use super::{
    frame::use_app_id,
    preview::{MessengerMessage, NotificationCard},
    users::ConditionBuilder,
    widgets::{Loading, PageError},
};
use crate::{
    domain::{
        format_date, template,
        whisper::{lookup, Button, ButtonAction, Trigger, WhisperDraft, MAX_BUTTONS, TEMPLATES},
    },
    error::AppError,
    models::{AudiencePreview, PropertyView, WhisperEditor, WhisperSummary},
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhisperRef {
    pub app_id: String,
    pub whisper_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditorRef {
    pub app_id: String,
    /// "new" for a whisper not saved yet.
    pub whisper_id: String,
    pub template: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaveInput {
    pub app_id: String,
    pub whisper_id: String,
    /// The `WhisperDraft` as JSON.
    pub draft: String,
    pub activate: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusInput {
    pub app_id: String,
    pub whisper_id: String,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudienceInput {
    pub app_id: String,
    pub all_users: bool,
    pub conditions: String,
}

#[server(prefix = "/api", endpoint = "whispers/list", output = crate::wire::Json)]
pub async fn list_whispers(input: super::settings::AppRef) -> Result<Vec<WhisperSummary>, AppError> {
    use crate::server::{request, whispers};
    request::as_teammate(|state, me| async move { whispers::list(&state, &me, &input.app_id).await }).await
}

#[server(prefix = "/api", endpoint = "whispers/editor", output = crate::wire::Json)]
pub async fn load_editor(input: EditorRef) -> Result<WhisperEditor, AppError> {
    use crate::server::{request, whispers};
    request::as_teammate(|state, me| async move {
        let id = (input.whisper_id != "new").then_some(input.whisper_id.as_str());
        let template = (!input.template.is_empty()).then_some(input.template.as_str());
        whispers::editor(&state, &me, &input.app_id, id, template).await
    })
    .await
}

#[server(prefix = "/api", endpoint = "whispers/save", output = crate::wire::Json)]
pub async fn save_whisper(input: SaveInput) -> Result<String, AppError> {
    use crate::server::{request, whispers};
    request::as_teammate(|state, me| async move {
        let draft: WhisperDraft = serde_json::from_str(&input.draft)
            .map_err(|_| AppError::Field { field: "form".into(), message: "The whisper could not be read.".into() })?;
        let id = (input.whisper_id != "new").then_some(input.whisper_id.as_str());
        whispers::save(&state, &me, &input.app_id, id, draft, input.activate).await
    })
    .await
}

#[server(prefix = "/api", endpoint = "whispers/status", output = crate::wire::Json)]
pub async fn set_whisper_status(input: StatusInput) -> Result<(), AppError> {
    use crate::{
        domain::whisper::Status,
        server::{request, whispers},
    };
    request::as_teammate(|state, me| async move {
        let status = Status::parse(&input.status)
            .ok_or_else(|| AppError::Field { field: "status".into(), message: "Unknown status.".into() })?;
        whispers::set_status(&state, &me, &input.app_id, &input.whisper_id, status).await
    })
    .await
}

#[server(prefix = "/api", endpoint = "whispers/duplicate", output = crate::wire::Json)]
pub async fn duplicate_whisper(input: WhisperRef) -> Result<String, AppError> {
    use crate::server::{request, whispers};
    request::as_teammate(
        |state, me| async move { whispers::duplicate(&state, &me, &input.app_id, &input.whisper_id).await },
    )
    .await
}

#[server(prefix = "/api", endpoint = "whispers/delete", output = crate::wire::Json)]
pub async fn delete_whisper(input: WhisperRef) -> Result<(), AppError> {
    use crate::server::{request, whispers};
    request::as_teammate(
        |state, me| async move { whispers::delete(&state, &me, &input.app_id, &input.whisper_id).await },
    )
    .await
}

#[server(prefix = "/api", endpoint = "whispers/audience", output = crate::wire::Json)]
pub async fn preview_audience(input: AudienceInput) -> Result<AudiencePreview, AppError> {
    use crate::server::{request, whispers};
    request::as_teammate(|state, me| async move {
        let conditions: Vec<crate::domain::conditions::Condition> =
            serde_json::from_str(&input.conditions).unwrap_or_default();
        whispers::audience_preview(&state, &me, &input.app_id, input.all_users, &conditions).await
    })
    .await
}

#[component]
fn TemplatePicker() -> impl IntoView {
    let app_id = use_app_id();
    view! {
        <section class="panel" aria-labelledby="templates-h">
            <h2 id="templates-h">"Start a whisper"</h2>
            <ul class="templates">
                {TEMPLATES.iter().map(|t| view! {
                    <li>
                        <a href=move || format!("/apps/{}/whispers/new?template={}", app_id.get(), t.key)>{t.name}</a>
                        <span class="muted">{t.description}</span>
                    </li>
                }).collect_view()}
                <li>
                    <a href=move || format!("/apps/{}/whispers/new", app_id.get())>"From scratch"</a>
                    <span class="muted">"Choose everything yourself."</span>
                </li>
            </ul>
        </section>
    }
}

#[component]
pub fn WhispersPage() -> impl IntoView {
    let app_id = use_app_id();
    let status = ServerAction::<SetWhisperStatus>::new();
    let duplicate = ServerAction::<DuplicateWhisper>::new();
    let delete = ServerAction::<DeleteWhisper>::new();
    let confirming = RwSignal::new(None::<String>);
    let data = Resource::new(
        move || (app_id.get(), status.version().get(), duplicate.version().get(), delete.version().get()),
        |(app_id, ..)| list_whispers(super::settings::AppRef { app_id }),
    );
    let error = Signal::derive(move || {
        [
            status.value().get().and_then(|r| r.err()),
            duplicate.value().get().and_then(|r| r.err()),
            delete.value().get().and_then(|r| r.err()),
        ]
        .into_iter()
        .flatten()
        .next()
    });
    view! {
        <Title text="Whispers"/>
        <h1>"Whispers"</h1>
        {move || error.get().map(|e| view! { <p class="form-error" role="alert">{e.form_message().unwrap_or_else(|| e.to_string())}</p> })}
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(list) if list.is_empty() => view! {
                        <p>"No whispers yet. Start from a template:"</p>
                        <TemplatePicker/>
                    }.into_any(),
                    Ok(list) => view! {
                        <div class="table-wrap">
                        <table class="whispers">
                            <thead><tr>
                                <th scope="col">"Name"</th><th scope="col">"Status"</th><th scope="col">"Trigger"</th>
                                <th scope="col">"Audience"</th><th scope="col">"Exposed"</th><th scope="col">"Seen"</th>
                                <th scope="col">"Clicked"</th><th scope="col">"Replied"</th><th scope="col">"Last edited"</th>
                                <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                            </tr></thead>
                            <tbody>
                                {list.into_iter().map(|w| {
                                    let app = app_id.get_untracked();
                                    let id = w.id.clone();
                                    let (id2, id3, id4, id5) = (id.clone(), id.clone(), id.clone(), id.clone());
                                    let (app2, app3) = (app.clone(), app.clone());
                                    let name = w.name.clone();
                                    let toggle = if w.status == "active" { ("paused", "Pause") } else if w.status == "paused" { ("active", "Resume") } else { ("active", "Activate") };
                                    view! {
                                        <tr>
                                            <td><a href=format!("/apps/{app}/whispers/{id}")>{w.name.clone()}</a></td>
                                            <td><span class=format!("status status-{}", w.status)>{w.status.clone()}</span></td>
                                            <td>{w.trigger.clone()}</td>
                                            <td>{w.audience.clone()}</td>
                                            <td>{w.exposed}</td><td>{w.seen}</td><td>{w.clicked}</td><td>{w.replied}</td>
                                            <td>{format_date(w.updated_at)}</td>
                                            <td class="actions">
                                                <button type="button" aria-label=format!("{} {}", toggle.1, name) on:click={
                                                    let app = app2.clone();
                                                    move |_| { status.dispatch(SetWhisperStatus { input: StatusInput { app_id: app.clone(), whisper_id: id2.clone(), status: toggle.0.into() } }); }
                                                }>{toggle.1}</button>
                                                <button type="button" aria-label=format!("Duplicate {}", name) on:click={
                                                    let app = app3.clone();
                                                    move |_| { duplicate.dispatch(DuplicateWhisper { input: WhisperRef { app_id: app.clone(), whisper_id: id3.clone() } }); }
                                                }>"Duplicate"</button>
                                                <Show
                                                    when={ let id = id4.clone(); move || confirming.get().as_deref() == Some(id.as_str()) }
                                                    fallback={ let id = id4.clone(); let name = name.clone(); move || {
                                                        let id = id.clone();
                                                        view! { <button type="button" class="danger" aria-label=format!("Delete {}", name) on:click=move |_| confirming.set(Some(id.clone()))>"Delete"</button> }
                                                    } }
                                                >
                                                    <span role="alert">"Delete for good? "</span>
                                                    <button type="button" class="danger" on:click={
                                                        let (app, id) = (app.clone(), id5.clone());
                                                        move |_| { delete.dispatch(DeleteWhisper { input: WhisperRef { app_id: app.clone(), whisper_id: id.clone() } }); confirming.set(None); }
                                                    }>"Yes, delete"</button>
                                                    <button type="button" class="link-button" on:click=move |_| confirming.set(None)>"Cancel"</button>
                                                </Show>
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                        </div>
                        <TemplatePicker/>
                    }.into_any(),
                    Err(error) => view! { <PageError error/> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// Under a saved whisper: try it on the demo page, and ask why a user did
/// (or didn't) get it. The "Why?" panel is a part of the page loaded when
/// the teammate opens it (`#[lazy]`, declared in `pages::PAGE_PARTS`), as
/// on a user's profile: the editor's page does not download it.
#[component]
fn SavedWhisperTools(app_id: String, id: String) -> impl IntoView {
    let demo = format!("/demo/{app_id}?whisper={id}");
    let open = RwSignal::new(false);
    let panel = move || {
        let (app_id, id) = (app_id.clone(), id.clone());
        view! { <Suspense>{move || Suspend::new(whisper_why(app_id.clone(), id.clone()))}</Suspense> }
    };
    view! {
        <p><a class="button" href=demo target="_blank" rel="external noopener" data-testid="try-whisper">"Try this whisper"</a>
            <span class="muted">" on a demo page with the widget, as a fresh test user."</span></p>
        <Show
            when=move || open.get()
            fallback=move || view! {
                <section class="panel">
                    <button type="button" data-testid="why-open" on:click=move |_| open.set(true)>"Why did (or didn't) a user get it?"</button>
                </section>
            }
        >
            {panel.clone()}
        </Show>
    }
}

#[lazy]
fn whisper_why(app_id: String, id: String) -> AnyView {
    view! { <super::explain::WhyForSubject app_id kind="whisper" id/> }.into_any()
}

#[component]
pub fn WhisperEditorPage() -> impl IntoView {
    let app_id = use_app_id();
    let params = use_params_map();
    let query = use_query_map();
    let whisper_id = Memo::new(move |_| params.read().get("whisper_id").unwrap_or_default());
    let template = Memo::new(move |_| query.read().get("template").unwrap_or_default());
    let data = Resource::new(
        move || EditorRef { app_id: app_id.get(), whisper_id: whisper_id.get(), template: template.get() },
        load_editor,
    );
    // The editor is a browser tool full of live state: it is built once the
    // page is interactive (effects run only in the browser), so the server
    // sends "Loading…" and nothing of the editor has to hydrate.
    let mounted = RwSignal::new(false);
    Effect::new(move |_| mounted.set(true));
    view! {
        <Title text="Whisper"/>
        <Show when=move || mounted.get() fallback=Loading>
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(e) => {
                            let saved = e.id.clone().map(|id| view! { <SavedWhisperTools app_id=app_id.get_untracked() id/> });
                            view! { <Editor e/> {saved} }.into_any()
                        }
                        Err(error) => view! { <PageError error/> }.into_any(),
                    }
                })}
            </Suspense>
        </Show>
    }
}

#[component]
fn Editor(e: WhisperEditor) -> impl IntoView {
    let app_id = use_app_id();
    let navigate = use_navigate();
    let d = e.draft.clone();
    let id = RwSignal::new(e.id.clone());
    let status = RwSignal::new(e.status.clone());
    let name = RwSignal::new(d.name.clone());
    let all_users = RwSignal::new(d.all_users);
    let conditions = RwSignal::new(d.conditions.clone());
    let properties = RwSignal::new(e.properties.clone());
    let kind = RwSignal::new(d.trigger.kind());
    let event = RwSignal::new(match &d.trigger {
        Trigger::Event(name) => name.clone(),
        _ => String::new(),
    });
    let text = RwSignal::new(d.text.clone());
    let sender_id = RwSignal::new(d.sender_id.clone());
    let buttons = RwSignal::new(d.buttons.clone());
    let push = RwSignal::new(d.push);
    let preview_user = RwSignal::new(String::new());
    let confirm_active = RwSignal::new(false);
    let teammates = e.teammates.clone();

    let draft = move || WhisperDraft {
        name: name.get(),
        all_users: all_users.get(),
        conditions: conditions.get(),
        trigger: Trigger::from_kind(&kind.get(), event.get()),
        text: text.get(),
        sender_id: sender_id.get(),
        buttons: buttons.get(),
        push: push.get(),
    };

    // The live count and sample users, as the audience changes.
    // Loaded in the browser only: the count changes with every edit, and
    // the server-rendered page shows "Loading…" where it goes.
    let audience = LocalResource::new(move || {
        let input = AudienceInput {
            app_id: app_id.get(),
            all_users: all_users.get(),
            conditions: serde_json::to_string(&conditions.get()).unwrap_or_default(),
        };
        preview_audience(input)
    });

    // Previews re-render in the browser as you type: no server round trip.
    let parsed = Memo::new(move |_| template::parse(&text.get()));
    let html = Signal::derive(move || match parsed.get() {
        Ok(segs) => {
            // Only a chosen sample user needs the audience data; the first
            // render (fallbacks) is the same on the server and the client.
            let who = preview_user.get();
            let values = if who.is_empty() {
                Vec::new()
            } else {
                audience
                    .get()
                    .and_then(|r| r.ok())
                    .and_then(|a| a.samples.into_iter().find(|u| u.id == who))
                    .map(|u| u.values)
                    .unwrap_or_default()
            };
            template::render_html(&segs, |n| lookup(&values, n))
        }
        Err(_) => template::render_html(&[template::Segment::Text(text.get())], |_| None),
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
    let preview_buttons = Signal::derive(move || buttons.get());

    let save = ServerAction::<SaveWhisper>::new();
    let status_action = ServerAction::<SetWhisperStatus>::new();
    let error = Signal::derive(move || {
        save.value().get().and_then(|r| r.err()).or_else(|| status_action.value().get().and_then(|r| r.err()))
    });
    let field = move |f: &'static str| move || error.get().and_then(|e| e.field_message(f));
    Effect::new(move |_| {
        if let Some(Ok(new_id)) = save.value().get() {
            let was_new = id.get_untracked().is_none();
            id.set(Some(new_id.clone()));
            if was_new {
                navigate(&format!("/apps/{}/whispers/{new_id}", app_id.get_untracked()), Default::default());
            }
        }
    });
    let do_save = move |activate: bool| {
        confirm_active.set(false);
        let input = SaveInput {
            app_id: app_id.get_untracked(),
            whisper_id: id.get_untracked().unwrap_or_else(|| "new".into()),
            draft: serde_json::to_string(&draft()).unwrap_or_default(),
            activate,
        };
        if activate {
            status.set("active".into());
        }
        save.dispatch(SaveWhisper { input });
    };
    let change_status = move |to: &'static str| {
        if let Some(wid) = id.get_untracked() {
            status_action.dispatch(SetWhisperStatus {
                input: StatusInput { app_id: app_id.get_untracked(), whisper_id: wid, status: to.into() },
            });
            status.set(to.into());
        }
    };
    let text_ref = NodeRef::<leptos::html::Textarea>::new();
    let insert_placeholder = move |name: String| {
        let token = format!("{{{{ {name} || }}}}");
        let Some(el) = text_ref.get() else {
            text.update(|t| t.push_str(&token));
            return;
        };
        let current = el.value();
        let at = el.selection_start().ok().flatten().map(|n| n as usize).unwrap_or(current.encode_utf16().count());
        let utf16: Vec<u16> = current.encode_utf16().collect();
        let at = at.min(utf16.len());
        let before = String::from_utf16_lossy(&utf16[..at]);
        let after = String::from_utf16_lossy(&utf16[at..]);
        text.set(format!("{before}{token}{after}"));
    };
    let events = e.events.clone();

    view! {
        <h1>{move || if id.get().is_some() { format!("Whisper: {}", name.get()) } else { "New whisper".to_string() }}</h1>
        <p class="muted">"Status: " <span class=move || format!("status status-{}", status.get())>{move || status.get()}</span></p>
        <div class="editor">
            <div class="editor-form">
                <section class="panel">
                    <div class="field">
                        <label for="w-name">"Name"</label>
                        <input id="w-name" prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev))/>
                        <p class="field-error" aria-live="polite">{field("name")}</p>
                    </div>
                </section>
                <section class="panel" aria-labelledby="aud-h">
                    <h2 id="aud-h">"Audience"</h2>
                    <div class="radio-row" role="radiogroup" aria-label="Who receives it">
                        <input type="radio" id="aud-all" name="aud" prop:checked=move || all_users.get() on:change=move |_| all_users.set(true)/>
                        <label for="aud-all">"All users"</label>
                        <input type="radio" id="aud-some" name="aud" prop:checked=move || !all_users.get() on:change=move |_| all_users.set(false)/>
                        <label for="aud-some">"Users who match conditions"</label>
                    </div>
                    <div hidden=move || all_users.get()>
                        <ConditionBuilder conditions properties on_change=Callback::new(|_| ())/>
                    </div>
                    <p class="field-error" aria-live="polite">{field("conditions")}</p>
                    {move || match audience.get() {
                        None => view! { <p class="count" role="status">"Counting users…"</p> }.into_any(),
                        Some(Ok(a)) => view! {
                            <p class="count" role="status">{format!("{} {} match now", a.count, if a.count == 1 { "user" } else { "users" })}</p>
                            {(!a.samples.is_empty()).then(|| view! {
                                <p class="muted">"For example: " {a.samples.iter().map(|s| s.name.clone()).collect::<Vec<_>>().join(", ")}</p>
                            })}
                            {(!a.forecast.is_empty() && kind.get() == Trigger::PropertyMatch.kind()).then(|| view! {
                                <p class="muted" data-testid="forecast">"Starting to match, day by day over the next 7 days: "
                                    {a.forecast.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(" · ")}
                                    {format!(" ({} in all)", a.forecast.iter().sum::<i64>())}
                                </p>
                            })}
                        }.into_any(),
                        Some(Err(e)) => view! { <p class="field-error" role="alert">{e.field_message("conditions").unwrap_or_else(|| e.to_string())}</p> }.into_any(),
                    }}
                </section>
                <section class="panel" aria-labelledby="trig-h">
                    <h2 id="trig-h">"Trigger"</h2>
                    <div class="field">
                        <label for="w-trigger">"Send it"</label>
                        <select id="w-trigger" on:change=move |ev| kind.set(event_target_value(&ev))>
                            {[(Trigger::Event(String::new()), "When the user does an event"), (Trigger::AppLaunch, "On app launch"), (Trigger::FirstMessage, "On the user's first message"), (Trigger::PropertyMatch, "When a user starts matching (no event)")]
                                .into_iter().map(|(t, label)| { let k = t.kind(); let value = k.clone(); view! { <option value=value selected=move || kind.get() == k>{label}</option> } }).collect_view()}
                        </select>
                    </div>
                    <Show when=move || kind.get() == Trigger::Event(String::new()).kind()>
                        <div class="field">
                            <label for="w-event">"Event name"</label>
                            <input id="w-event" list="w-events" prop:value=move || event.get() on:input=move |ev| event.set(event_target_value(&ev))/>
                            <datalist id="w-events">{events.iter().map(|e| view! { <option value=e.clone()/> }).collect_view()}</datalist>
                        </div>
                    </Show>
                    <p class="hint" data-testid="when-sent">{move || draft().when_sent()}</p>
                    <p class="field-error" aria-live="polite">{field("trigger")}</p>
                </section>
                <section class="panel" aria-labelledby="msg-h">
                    <h2 id="msg-h">"Message"</h2>
                    <div class="field">
                        <label for="w-sender">"From"</label>
                        <select id="w-sender" on:change=move |ev| sender_id.set(event_target_value(&ev))>
                            {teammates.iter().map(|t| {
                                let tid = t.id.clone();
                                view! { <option value=t.id.clone() selected=move || sender_id.get() == tid>{t.name.clone()}</option> }
                            }).collect_view()}
                        </select>
                        <p class="field-error" aria-live="polite">{field("sender")}</p>
                    </div>
                    <div class="field">
                        <label for="w-text">"Text"</label>
                        <p class="hint" id="w-text-hint">"Personalise with {{ firstName || there }}. Style with **bold**, *italic*, [links](https://…), lines starting with “- ” for lists."</p>
                        <textarea id="w-text" rows="6" node_ref=text_ref aria-describedby="w-text-hint" prop:value=move || text.get() on:input=move |ev| text.set(event_target_value(&ev))></textarea>
                        <p class="field-error" aria-live="polite">
                            {move || parsed.get().err().map(|e| e.to_string()).or_else(field("text"))}
                        </p>
                    </div>
                    <div class="field">
                        <label for="w-insert">"Insert a property"</label>
                        <select id="w-insert" on:change=move |ev| {
                            let v = event_target_value(&ev);
                            if !v.is_empty() { insert_placeholder(v); }
                        }>
                            <option value="" selected=true>"Choose…"</option>
                            {move || properties.get().into_iter().map(|p: PropertyView| {
                                let n = if p.name == "givenName" { "firstName".to_string() } else { p.name.clone() };
                                view! { <option value=n.clone()>{n.clone()}</option> }
                            }).collect_view()}
                        </select>
                    </div>
                </section>
                <section class="panel" aria-labelledby="btn-h">
                    <h2 id="btn-h">"Action buttons"</h2>
                    <div class="button-rows">{move || buttons.get().into_iter().enumerate().map(|(i, b)| {
                        let (is_link, value) = match &b.action { ButtonAction::Link(u) => (true, u.clone()), ButtonAction::Reply(t) => (false, t.clone()) };
                        let n = i + 1;
                        view! {
                            <div class="button-row" role="group" aria-label=format!("Button {n}")>
                                <label for=format!("b{i}-label")>"Label"</label>
                                <input id=format!("b{i}-label") value=b.label.clone() on:change=move |ev| { let v = event_target_value(&ev); buttons.update(|bs| if let Some(b) = bs.get_mut(i) { b.label = v; }); }/>
                                <label for=format!("b{i}-kind")>"Action"</label>
                                <select id=format!("b{i}-kind") on:change=move |ev| {
                                    let link = event_target_value(&ev) == "link";
                                    buttons.update(|bs| if let Some(b) = bs.get_mut(i) { b.action = if link { ButtonAction::Link(String::new()) } else { ButtonAction::Reply(String::new()) }; });
                                }>
                                    <option value="link" selected=is_link>"Open a link"</option>
                                    <option value="reply" selected=!is_link>"Send a reply"</option>
                                </select>
                                <label for=format!("b{i}-value")>{if is_link { "Link URL" } else { "Reply text" }}</label>
                                <input id=format!("b{i}-value") value=value on:change=move |ev| {
                                    let v = event_target_value(&ev);
                                    buttons.update(|bs| if let Some(b) = bs.get_mut(i) { b.action = match b.action { ButtonAction::Link(_) => ButtonAction::Link(v), ButtonAction::Reply(_) => ButtonAction::Reply(v) }; });
                                }/>
                                <button type="button" class="link-button" on:click=move |_| buttons.update(|bs| { bs.remove(i); })>{format!("Remove button {n}")}</button>
                            </div>
                        }
                    }).collect_view()}</div>
                    <button type="button" disabled=move || buttons.with(|b| b.len() >= MAX_BUTTONS) on:click=move |_| buttons.update(|bs| bs.push(Button { label: String::new(), action: ButtonAction::Link(String::new()) }))>"Add button"</button>
                    <p class="field-error" aria-live="polite">{field("buttons")}</p>
                </section>
                <section class="panel" aria-labelledby="push-h">
                    <h2 id="push-h">"Delivery"</h2>
                    <label class="check">
                        <input type="checkbox" data-testid="whisper-push" prop:checked=move || push.get()
                            on:change=move |ev| push.set(event_target_checked(&ev))/>
                        " Also send as a push notification when the user is not online"
                    </label>
                    <p class="hint">"Needs push turned on in Settings, and the user's permission (asked after their first message)."</p>
                </section>
                <div class="actions">
                    {move || error.get().and_then(|e| e.form_message()).map(|m| view! { <p class="form-error" role="alert">{m}</p> })}
                    <Show when=move || confirm_active.get()>
                        <div class="secret-once" role="alertdialog" aria-label="Apply changes">
                            <p>"This whisper is active. Your changes apply to future deliveries only; messages already delivered stay as they were."</p>
                            <button type="button" on:click=move |_| do_save(false)>"Apply to future deliveries"</button>
                            <button type="button" class="link-button" on:click=move |_| confirm_active.set(false)>"Cancel"</button>
                        </div>
                    </Show>
                    <button type="button" on:click=move |_| {
                        if status.get_untracked() == "active" { confirm_active.set(true) } else { do_save(false) }
                    }>{move || if status.get() == "draft" { "Save draft" } else { "Save changes" }}</button>
                    <Show when=move || status.get() == "draft">
                        <button type="button" on:click=move |_| do_save(true)>"Save and activate"</button>
                    </Show>
                    <Show when=move || status.get() == "active">
                        <button type="button" on:click=move |_| change_status("paused")>"Pause"</button>
                    </Show>
                    <Show when=move || status.get() == "paused">
                        <button type="button" on:click=move |_| change_status("active")>"Resume"</button>
                    </Show>
                    <Show when=move || id.get().is_some() && status.get() != "draft"><super::recall::RecallWhisper whisper_id=id.get_untracked().unwrap_or_default() status/></Show>
                    <p role="status" class="muted">{move || match (save.pending().get(), save.value().get()) {
                        (true, _) => "Saving…".to_string(),
                        (false, Some(Ok(_))) => "Saved.".to_string(),
                        _ => String::new(),
                    }}</p>
                </div>
            </div>
            <aside class="editor-preview" aria-labelledby="prev-h">
                <h2 id="prev-h">"Preview"</h2>
                <div class="field">
                    <label for="w-preview-user">"Personalise as"</label>
                    <select id="w-preview-user" on:change=move |ev| preview_user.set(event_target_value(&ev))>
                        <option value="">"Nobody (show fallbacks)"</option>
                        {move || audience.get().and_then(|r| r.ok()).map(|a| a.samples).unwrap_or_default().into_iter()
                            .map(|s| view! { <option value=s.id.clone()>{s.name.clone()}</option> }).collect_view()}
                    </select>
                </div>
                <NotificationCard sender html buttons=preview_buttons/>
                <MessengerMessage sender html buttons=preview_buttons/>
            </aside>
        </div>
    }
}
