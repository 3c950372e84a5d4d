//! The inbox: open and closed conversations (assigned to me / unassigned /
//! all, newest activity first, unread counts, search), one conversation
//! with the user's profile beside it, reply (light styling), close, reopen,
//! assign; live through server-sent events (`/live/inbox/{app_id}`, see
//! `server::conversations::live`). Keyboard: j/k or arrows move, Enter
//! opens, `r` focuses the reply, `c` or `x` closes; the reply box keeps a
//! draft per conversation. Also a teammate's page (the conversations they
//! started or are assigned).

use std::collections::HashMap;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map};
use serde::{Deserialize, Serialize};

use super::{
    frame::use_app_id,
    widgets::{Loading, PageError},
};
use crate::{
    domain::format_date,
    error::AppError,
    models::{ConversationDetail, ConversationSummary, InboxPage, TeammatePage},
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboxQuery {
    pub app_id: String,
    /// `open` or `closed`.
    pub state: String,
    /// `mine`, `unassigned` or `all`.
    pub filter: String,
    pub search: String,
    pub after: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationRef {
    pub app_id: String,
    pub conversation_id: String,
}

#[server(prefix = "/api", endpoint = "inbox/list", output = crate::wire::Json)]
pub async fn load_inbox(input: InboxQuery) -> Result<InboxPage, AppError> {
    use crate::server::{conversations, request};
    request::as_teammate(|state, me| async move {
        let r = conversations::ListRequest {
            app_id: &input.app_id,
            state: &input.state,
            filter: &input.filter,
            search: &input.search,
            after: &input.after,
        };
        conversations::list(&state, &me, r).await
    })
    .await
}

#[server(prefix = "/api", endpoint = "inbox/conversation", output = crate::wire::Json)]
pub async fn load_conversation(input: ConversationRef) -> Result<ConversationDetail, AppError> {
    use crate::server::{conversations, request};
    request::as_teammate(|state, me| async move {
        conversations::open(&state, &me, &input.app_id, &input.conversation_id).await
    })
    .await
}

#[server(prefix = "/api", endpoint = "inbox/reply", output = crate::wire::Json)]
pub async fn reply_conversation(app_id: String, conversation_id: String, text: String) -> Result<(), AppError> {
    use crate::server::{conversations, request};
    request::as_teammate(|state, me| async move {
        conversations::reply(&state, &me, &app_id, &conversation_id, &text).await
    })
    .await
}

#[server(prefix = "/api", endpoint = "inbox/state", output = crate::wire::Json)]
pub async fn set_conversation_state(app_id: String, conversation_id: String, open: bool) -> Result<(), AppError> {
    use crate::server::{conversations, request};
    request::as_teammate(|state, me| async move {
        conversations::set_state(&state, &me, &app_id, &conversation_id, open).await
    })
    .await
}

#[server(prefix = "/api", endpoint = "inbox/assign", output = crate::wire::Json)]
pub async fn assign_conversation(app_id: String, conversation_id: String, assignee: String) -> Result<(), AppError> {
    use crate::server::{conversations, request};
    request::as_teammate(|state, me| async move {
        conversations::assign(&state, &me, &app_id, &conversation_id, &assignee).await
    })
    .await
}

/// "Start a conversation" from a user's profile: returns the conversation's id.
#[server(prefix = "/api", endpoint = "inbox/start", output = crate::wire::Json)]
pub async fn start_conversation(app_id: String, user: String, text: String) -> Result<String, AppError> {
    use crate::server::{conversations, request};
    request::as_teammate(|state, me| async move { conversations::start(&state, &me, &app_id, &user, &text).await })
        .await
}

#[server(prefix = "/api", endpoint = "teammates/conversations", output = crate::wire::Json)]
pub async fn load_teammate(app_id: String, teammate_id: String) -> Result<TeammatePage, AppError> {
    use crate::server::{conversations, request};
    request::as_teammate(|state, me| async move { conversations::teammate(&state, &me, &app_id, &teammate_id).await })
        .await
}

/// A time as the lists show it.
fn when(ms: i64) -> String {
    format_date(ms)
}

/// Live updates and the keyboard, wired once the page runs in the browser.
#[cfg(feature = "hydrate")]
mod browser {
    use leptos::{
        prelude::*,
        wasm_bindgen::{closure::Closure, JsCast},
        web_sys,
    };

    /// Opens the inbox's event stream; `on_change` gets each changed
    /// conversation's id (`*`: anything may have changed). Closed when the
    /// page goes away. The browser reconnects by itself after a drop.
    pub fn live(app_id: &str, on_change: impl Fn(String) + 'static) {
        let Ok(source) = web_sys::EventSource::new(&format!("/live/inbox/{app_id}")) else { return };
        let listener = Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
            on_change(e.data().as_string().unwrap_or_default());
        });
        let _ = source.add_event_listener_with_callback("change", listener.as_ref().unchecked_ref());
        listener.forget();
        let source = leptos::__reexports::send_wrapper::SendWrapper::new(source);
        on_cleanup(move || source.close());
    }

    /// Whether a key press is typing (in a field), not a shortcut.
    pub fn typing(e: &web_sys::KeyboardEvent) -> bool {
        e.target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .map(|el| matches!(el.tag_name().to_ascii_lowercase().as_str(), "input" | "textarea" | "select"))
            .unwrap_or(false)
            || e.ctrl_key()
            || e.meta_key()
            || e.alt_key()
    }

    pub fn focus(id: &str) {
        if let Some(el) = document().get_element_by_id(id).and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok()) {
            let _ = el.focus();
        }
    }
}

#[component]
pub fn InboxPage() -> impl IntoView {
    let app_id = use_app_id();
    let params = use_params_map();
    let current = Memo::new(move |_| params.read().get("conversation_id").unwrap_or_default());
    // Built in the browser only (live state everywhere): the server sends "Loading…".
    let mounted = RwSignal::new(false);
    Effect::new(move |_| mounted.set(true));
    view! {
        <Title text="Inbox"/>
        <Show when=move || mounted.get() fallback=Loading>
            <Inbox app_id current/>
        </Show>
    }
}

#[component]
fn Inbox(app_id: Memo<String>, current: Memo<String>) -> impl IntoView {
    let tab = RwSignal::new("open".to_string());
    let filter = RwSignal::new("all".to_string());
    let search = RwSignal::new(String::new());
    // The page shown: the cursors of the pages before it (empty: the newest).
    let pages: RwSignal<Vec<String>> = RwSignal::new(vec![]);
    let list_tick = RwSignal::new(0u64);
    let conv_tick = RwSignal::new(0u64);
    let selected = RwSignal::new(0usize);
    let shown: RwSignal<Vec<String>> = RwSignal::new(vec![]);
    let drafts: RwSignal<HashMap<String, String>> = RwSignal::new(HashMap::new());
    let teammates = RwSignal::new(Vec::<(String, String)>::new());
    provide_context(TeammatesCtx(teammates));
    let navigate = use_navigate();

    let list = Resource::new(
        move || {
            let q = InboxQuery {
                app_id: app_id.get(),
                state: tab.get(),
                filter: filter.get(),
                search: search.get(),
                after: pages.with(|p| p.last().cloned().unwrap_or_default()),
            };
            (q, list_tick.get())
        },
        |(q, _)| load_inbox(q),
    );
    let detail = Resource::new(
        move || (app_id.get(), current.get(), conv_tick.get()),
        |(app_id, conversation_id, _)| async move {
            if conversation_id.is_empty() {
                Ok(None)
            } else {
                load_conversation(ConversationRef { app_id, conversation_id }).await.map(Some)
            }
        },
    );
    Effect::new(move |_| {
        if let Some(Ok(page)) = list.get() {
            let ids: Vec<String> = page.conversations.iter().map(|c| c.id.clone()).collect();
            let at = ids.iter().position(|id| *id == current.get_untracked());
            if let Some(at) = at {
                selected.set(at);
            } else if selected.get_untracked() >= ids.len() {
                selected.set(ids.len().saturating_sub(1));
            }
            shown.set(ids);
            if teammates.with_untracked(|t| *t != page.teammates) {
                teammates.set(page.teammates.clone());
            }
        }
    });

    let reply = ServerAction::<ReplyConversation>::new();
    let set_state = ServerAction::<SetConversationState>::new();
    let assign = ServerAction::<AssignConversation>::new();
    // After each change: reload (the event stream does too, this is for certainty).
    Effect::new(move |_| {
        let done = (reply.version().get(), set_state.version().get(), assign.version().get());
        if done != (0, 0, 0) {
            list_tick.update(|t| *t += 1);
            conv_tick.update(|t| *t += 1);
        }
    });
    // A reply sent: its draft is done.
    Effect::new(move |_| {
        if let Some(Ok(())) = reply.value().get() {
            let id = reply.input().get_untracked().map(|i| i.conversation_id);
            if let Some(id) = id {
                drafts.update(|d| {
                    d.remove(&id);
                });
            }
        }
    });

    #[cfg(feature = "hydrate")]
    {
        browser::live(&app_id.get_untracked(), move |changed| {
            list_tick.update(|t| *t += 1);
            if changed == "*" || changed == current.get_untracked() {
                conv_tick.update(|t| *t += 1);
            }
        });
        let navigate = navigate.clone();
        let handle = window_event_listener(leptos::ev::keydown, move |e| {
            if browser::typing(&e) {
                if e.key() == "Escape" {
                    if let Some(el) = document().active_element() {
                        use leptos::wasm_bindgen::JsCast;
                        if let Ok(el) = el.dyn_into::<leptos::web_sys::HtmlElement>() {
                            let _ = el.blur();
                        }
                    }
                }
                return;
            }
            let n = shown.with_untracked(|s| s.len());
            match e.key().as_str() {
                "j" | "ArrowDown" if n > 0 => {
                    e.prevent_default();
                    selected.update(|s| *s = (*s + 1).min(n - 1));
                }
                "k" | "ArrowUp" if n > 0 => {
                    e.prevent_default();
                    selected.update(|s| *s = s.saturating_sub(1));
                }
                "Enter" => {
                    if let Some(id) = shown.with_untracked(|s| s.get(selected.get_untracked()).cloned()) {
                        e.prevent_default();
                        navigate(&format!("/apps/{}/inbox/{id}", app_id.get_untracked()), Default::default());
                    }
                }
                "r" => {
                    e.prevent_default();
                    browser::focus("reply-text");
                }
                "c" | "x" => {
                    let id = current.get_untracked();
                    if !id.is_empty() {
                        e.prevent_default();
                        set_state.dispatch(SetConversationState {
                            app_id: app_id.get_untracked(),
                            conversation_id: id,
                            open: false,
                        });
                    }
                }
                _ => {}
            }
        });
        on_cleanup(move || handle.remove());
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = navigate;

    let tab_button = move |value: &'static str, label: &'static str| {
        view! {
            <button
                type="button"
                role="tab"
                aria-selected=move || (tab.get() == value).to_string()
                class:active=move || tab.get() == value
                on:click=move |_| {
                    tab.set(value.to_string());
                    pages.set(vec![]);
                    selected.set(0);
                }
            >{label}</button>
        }
    };

    view! {
        <div class="inbox">
            <section class="inbox-list" aria-labelledby="inbox-h">
                <h1 id="inbox-h">"Inbox"</h1>
                <div class="tabs" role="tablist" aria-label="State">
                    {tab_button("open", "Open")}
                    {tab_button("closed", "Closed")}
                </div>
                <div class="inbox-filters">
                    <label for="inbox-filter" class="visually-hidden">"Show"</label>
                    <select id="inbox-filter" on:change=move |ev| { filter.set(event_target_value(&ev)); pages.set(vec![]); selected.set(0); }>
                        <option value="all" selected=true>"All"</option>
                        <option value="mine">"Assigned to me"</option>
                        <option value="unassigned">"Unassigned"</option>
                    </select>
                    <label for="inbox-search" class="visually-hidden">"Search"</label>
                    <input
                        id="inbox-search"
                        type="search"
                        placeholder="Search by name or text"
                        on:input=move |ev| { search.set(event_target_value(&ev)); pages.set(vec![]); selected.set(0); }
                    />
                </div>
                <Transition fallback=Loading>
                    {move || Suspend::new(async move {
                        match list.await {
                            Ok(page) => view! { <ConversationList page app_id current selected pages/> }.into_any(),
                            Err(error) => view! { <PageError error/> }.into_any(),
                        }
                    })}
                </Transition>
                <p class="muted keys">"Keys: j/k move · Enter opens · r replies · c closes"</p>
            </section>
            <section class="inbox-conversation" aria-label="Conversation">
                <Transition fallback=Loading>
                    {move || Suspend::new(async move {
                        match detail.await {
                            Ok(Some(d)) => view! { <ConversationPane d app_id drafts reply set_state assign/> }.into_any(),
                            Ok(None) => view! { <p class="muted">"Choose a conversation."</p> }.into_any(),
                            Err(error) => view! { <PageError error/> }.into_any(),
                        }
                    })}
                </Transition>
            </section>
        </div>
    }
}

#[component]
fn ConversationList(
    page: InboxPage,
    app_id: Memo<String>,
    current: Memo<String>,
    selected: RwSignal<usize>,
    pages: RwSignal<Vec<String>>,
) -> impl IntoView {
    let (all, unassigned, mine) = page.open_counts;
    let counts = format!("Open: {all} · unassigned {unassigned} · mine {mine}");
    // Newer / older pages (keyset cursors: a page stays put while new activity arrives).
    let paging = {
        let next = page.next.clone();
        let deeper = pages.with_untracked(|p| !p.is_empty());
        (deeper || next.is_some()).then(|| {
            view! {
                <nav class="inbox-paging" aria-label="Pages">
                    {deeper.then(|| view! {
                        <button type="button" on:click=move |_| { pages.set(vec![]); selected.set(0); }>"Newest"</button>
                        <button type="button" on:click=move |_| { pages.update(|p| { p.pop(); }); selected.set(0); }>"Newer"</button>
                    })}
                    {next.map(|cursor| view! {
                        <button type="button" data-testid="inbox-older" on:click=move |_| {
                            pages.update(|p| p.push(cursor.clone()));
                            selected.set(0);
                        }>"Older"</button>
                    })}
                </nav>
            }
        })
    };
    if page.conversations.is_empty() {
        return view! {
            <p class="muted counts">{counts}</p>
            <p class="muted" data-testid="inbox-empty">"No conversations here."</p>
            {paging}
        }
        .into_any();
    }
    view! {
        <p class="muted counts">{counts}</p>
        <ul class="conversations" data-testid="inbox-list">
            {page.conversations.into_iter().enumerate().map(|(i, c)| {
                let id = c.id.clone();
                let href = format!("/apps/{}/inbox/{}", app_id.get_untracked(), c.id);
                let unread = c.unread > 0;
                view! {
                    <li
                        class="conversation-row"
                        class:selected=move || selected.get() == i
                        class:current=move || current.get() == id
                        class:unread=unread
                        data-state=c.state.clone()
                    >
                        <a href=href>
                            <span class="who">{c.user_name.clone()}</span>
                            {(c.unread > 0).then(|| view! { <span class="unread-count" aria-label=format!("{} unread", c.unread)>{c.unread}</span> })}
                            <span class="when muted">{when(c.last_activity_at)}</span>
                            <span class="last">{c.last_text.clone()}</span>
                            <span class="assignee muted">{c.assignee_name.clone().unwrap_or_else(|| "Unassigned".into())}</span>
                        </a>
                    </li>
                }
            }).collect_view()}
        </ul>
        {paging}
    }
    .into_any()
}

#[component]
fn ConversationPane(
    d: ConversationDetail,
    app_id: Memo<String>,
    drafts: RwSignal<HashMap<String, String>>,
    reply: ServerAction<ReplyConversation>,
    set_state: ServerAction<SetConversationState>,
    assign: ServerAction<AssignConversation>,
) -> impl IntoView {
    let s = d.summary.clone();
    let id = s.id.clone();
    let open = s.state == "open";
    let draft_id = id.clone();
    let draft = move || drafts.with(|m| m.get(&draft_id).cloned().unwrap_or_default());
    let set_draft = {
        let id = id.clone();
        move |v: String| {
            drafts.update(|m| {
                m.insert(id.clone(), v);
            })
        }
    };
    let send = {
        let id = id.clone();
        move || {
            let text = drafts.with_untracked(|m| m.get(&id).cloned().unwrap_or_default());
            if text.trim().is_empty() {
                return;
            }
            reply.dispatch(ReplyConversation { app_id: app_id.get_untracked(), conversation_id: id.clone(), text });
        }
    };
    let send2 = send.clone();
    let toggle = {
        let id = id.clone();
        move |_| {
            set_state.dispatch(SetConversationState {
                app_id: app_id.get_untracked(),
                conversation_id: id.clone(),
                open: !open,
            });
        }
    };
    let assign_to = {
        let id = id.clone();
        move |ev| {
            assign.dispatch(AssignConversation {
                app_id: app_id.get_untracked(),
                conversation_id: id.clone(),
                assignee: event_target_value(&ev),
            });
        }
    };
    let error = move || {
        reply.value().get().and_then(|r| r.err()).map(|e| {
            view! { <p class="field-error" role="alert">{e.field_message("text").unwrap_or_else(|| e.to_string())}</p> }
        })
    };
    let p = d.profile.clone();
    let user_href = format!("/apps/{}/users/{}", app_id.get_untracked(), p.id);
    let assignee = s.assignee_id.clone().unwrap_or_default();
    let teammates = use_context::<TeammatesCtx>().map(|t| t.0);
    view! {
        <div class="conversation-view" data-state=s.state.clone() data-testid="conversation">
            <div class="thread-pane">
                <header class="conversation-head">
                    <h2><a href=user_href.clone()>{s.user_name.clone()}</a></h2>
                    <span class=format!("state state-{}", s.state)>{if open { "Open" } else { "Closed" }}</span>
                    <label for="assignee" class="visually-hidden">"Assignee"</label>
                    <select id="assignee" on:change=assign_to>
                        <option value="" selected=assignee.is_empty()>"Unassigned"</option>
                        {move || teammates.map(|t| t.get()).unwrap_or_default().into_iter().map(|(tid, name)| {
                            let is = tid == assignee;
                            view! { <option value=tid selected=is>{name}</option> }
                        }).collect_view()}
                    </select>
                    {s.assignee_id.clone().map(|t| view! {
                        <a class="muted" href=format!("/apps/{}/teammates/{t}", app_id.get_untracked())>"Their conversations"</a>
                    })}
                    <button type="button" on:click=toggle>{if open { "Close" } else { "Reopen" }}</button>
                </header>
                <ol class="conversation thread">
                    {d.items.iter().map(|it| {
                        let m = &it.message;
                        let who = if m.from_user { s.user_name.clone() } else { m.name.clone().unwrap_or_else(|| "The team".into()) };
                        match (&m.card, &it.html) {
                            // Bodies are the template engine's sanitised HTML (as in the widget).
                            (Some(c), _) => view! {
                                <li class="from-team whisper-card">
                                    <span class="muted">{who}" · "{c.whisper.clone()}" · "{when(m.at)}</span>
                                    <div class="message-text" inner_html=c.html.clone()></div>
                                </li>
                            }.into_any(),
                            (None, Some(html)) => view! {
                                <li class="from-team">
                                    <span class="muted">{who}" · "{when(m.at)}</span>
                                    <div class="message-text" inner_html=html.clone()></div>
                                </li>
                            }.into_any(),
                            (None, None) => view! {
                                <li class="from-user">
                                    <span class="muted">{who}" · "{when(m.at)}</span>
                                    <p class="message-text">{m.text.clone()}</p>
                                </li>
                            }.into_any(),
                        }
                    }).collect_view()}
                </ol>
                <form class="reply" on:submit=move |ev| { ev.prevent_default(); send(); }>
                    <label for="reply-text" class="visually-hidden">"Reply"</label>
                    <textarea
                        id="reply-text"
                        rows="3"
                        maxlength="4096"
                        placeholder="Reply… (**bold**, *italic*, [link](https://…); Enter sends, Shift+Enter for a new line)"
                        prop:value=draft
                        on:input=move |ev| set_draft(event_target_value(&ev))
                        on:keydown=move |ev| {
                            if ev.key() == "Enter" && !ev.shift_key() {
                                ev.prevent_default();
                                send2();
                            }
                        }
                    ></textarea>
                    {error}
                    <button type="submit" disabled=move || reply.pending().get()>"Send"</button>
                </form>
            </div>
            <aside class="profile-pane" aria-label="User profile">
                <h3><a href=user_href>{p.name.clone()}</a></h3>
                <table>
                    <tbody>
                        {p.builtin.iter().chain(p.custom.iter()).filter(|v| !v.value.is_empty()).map(|v| view! {
                            <tr><th scope="row">{v.name.clone()}</th><td>{v.value.clone()}</td></tr>
                        }).collect_view()}
                    </tbody>
                </table>
                <h4>"Recent events"</h4>
                <ul>{p.events.iter().take(10).map(|(name, at, _)| view! { <li>{name.clone()}" · "{when(*at)}</li> }).collect_view()}</ul>
                <h4>"Whispers received"</h4>
                <ul>{p.messages.iter().filter_map(|m| m.card.as_ref().map(|c| (c.whisper.clone(), c.state.clone(), m.at))).map(|(w, st, at)| view! {
                    <li>{w}" · "{st}" · "{when(at)}</li>
                }).collect_view()}</ul>
                <h4>"Messages received"</h4>
                <ul>{p.manual.iter().map(|(mid, title, _, st, at)| view! {
                    <li><a href=format!("/apps/{}/messages/{mid}", app_id.get_untracked())>{title.clone()}</a>" · "{st.clone()}" · "{when(*at)}</li>
                }).collect_view()}</ul>
                <h4>"Conversations"</h4>
                <ul>{p.conversations.iter().map(|c| view! {
                    <li><a href=format!("/apps/{}/inbox/{}", app_id.get_untracked(), c.id)>{c.last_text.clone()}</a>" · "{c.state.clone()}" · "{when(c.last_activity_at)}</li>
                }).collect_view()}</ul>
            </aside>
        </div>
    }
}

/// The teammates the inbox list loaded, shared with the conversation pane.
#[derive(Clone, Copy)]
struct TeammatesCtx(RwSignal<Vec<(String, String)>>);

/// A user's conversations on their profile, and "Start a conversation".
#[component]
pub fn UserConversations(app_id: String, user: String, conversations: Vec<ConversationSummary>) -> impl IntoView {
    let start = ServerAction::<StartConversation>::new();
    let navigate = use_navigate();
    let app = app_id.clone();
    Effect::new(move |_| {
        if let Some(Ok(id)) = start.value().get() {
            navigate(&format!("/apps/{app}/inbox/{id}"), Default::default());
        }
    });
    let text = RwSignal::new(String::new());
    let error = move || {
        start.value().get().and_then(|r| r.err()).map(|e| {
            view! { <p class="field-error" role="alert">{e.field_message("text").unwrap_or_else(|| e.to_string())}</p> }
        })
    };
    let (a, u) = (app_id.clone(), user.clone());
    view! {
        <section class="panel" aria-labelledby="convs-h">
            <h2 id="convs-h">"Conversations"</h2>
            {if conversations.is_empty() {
                view! { <p class="muted">"No conversations yet."</p> }.into_any()
            } else {
                view! { <ul class="user-conversations">{conversations.into_iter().map(|c| view! {
                    <li data-state=c.state.clone()>
                        <a href=format!("/apps/{app_id}/inbox/{}", c.id)>{if c.last_text.is_empty() { "(no text)".to_string() } else { c.last_text.clone() }}</a>
                        {format!(" · {} · {}", c.state, when(c.last_activity_at))}
                    </li>
                }).collect_view()}</ul> }.into_any()
            }}
            <form class="start-conversation" on:submit=move |ev| {
                ev.prevent_default();
                let t = text.get_untracked();
                if !t.trim().is_empty() {
                    start.dispatch(StartConversation { app_id: a.clone(), user: u.clone(), text: t });
                }
            }>
                <label for="start-text">"Start a conversation"</label>
                <textarea id="start-text" rows="2" maxlength="4096" prop:value=move || text.get()
                    on:input=move |ev| text.set(event_target_value(&ev))></textarea>
                {error}
                <button type="submit" disabled=move || start.pending().get()>"Start a conversation"</button>
            </form>
        </section>
    }
}

/// A teammate's page: the conversations they started or are assigned.
#[component]
pub fn TeammatePageView() -> impl IntoView {
    let app_id = use_app_id();
    let params = use_params_map();
    let teammate = Memo::new(move |_| params.read().get("teammate_id").unwrap_or_default());
    let data = Resource::new(move || (app_id.get(), teammate.get()), |(a, t)| load_teammate(a, t));
    view! {
        <Title text="Teammate"/>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(t) => view! {
                        <h1>{t.name.clone()}</h1>
                        <section class="panel" aria-labelledby="tconv-h">
                            <h2 id="tconv-h">"Conversations started or assigned"</h2>
                            {if t.conversations.is_empty() {
                                view! { <p class="muted">"None yet."</p> }.into_any()
                            } else {
                                view! { <ul>{t.conversations.iter().map(|c| view! {
                                    <li data-state=c.state.clone()>
                                        <a href=format!("/apps/{}/inbox/{}", app_id.get_untracked(), c.id)>{c.user_name.clone()}</a>
                                        {format!(" · {} · {} · {}", c.last_text, c.state, when(c.last_activity_at))}
                                    </li>
                                }).collect_view()}</ul> }.into_any()
                            }}
                        </section>
                    }.into_any(),
                    Err(error) => view! { <PageError error/> }.into_any(),
                }
            })}
        </Suspense>
    }
}
