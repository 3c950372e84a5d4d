//! The users list (search, condition filters with a live count, sortable
//! columns, keyset pages, multi-select) and a user's profile.

use std::collections::HashSet;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};

use super::{
    frame::use_app_id,
    widgets::{Loading, PageError},
};
use crate::{
    domain::{
        conditions::{Condition, Operator},
        format_date,
        properties::PropType,
    },
    error::AppError,
    models::{Catalog, PropertyView, UserProfile, UsersPage},
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsersQuery {
    pub app_id: String,
    pub search: String,
    /// The condition list as JSON.
    pub conditions: String,
    pub sort: String,
    pub descending: bool,
    /// Cursor from the previous page ("" for the first page).
    pub after: String,
}

#[server(prefix = "/api", endpoint = "users/list", output = crate::wire::Json)]
pub async fn load_users(input: UsersQuery) -> Result<UsersPage, AppError> {
    use crate::server::{request, users};
    request::as_teammate(|state, me| async move {
        let r = users::ListRequest {
            app_id: &input.app_id,
            search: &input.search,
            conditions_json: &input.conditions,
            sort: &input.sort,
            descending: input.descending,
            after: &input.after,
        };
        users::list(&state, &me, r).await
    })
    .await
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRef {
    pub app_id: String,
    pub user: String,
}

#[server(prefix = "/api", endpoint = "users/profile", output = crate::wire::Json)]
pub async fn load_profile(input: UserRef) -> Result<UserProfile, AppError> {
    use crate::server::{request, users};
    request::as_teammate(|state, me| async move { users::profile(&state, &me, &input.app_id, &input.user).await }).await
}

#[server(prefix = "/api", endpoint = "users/catalog", output = crate::wire::Json)]
pub async fn load_catalog(input: super::settings::AppRef) -> Result<Catalog, AppError> {
    use crate::server::{request, users};
    request::as_teammate(|state, me| async move { users::catalog(&state, &me, &input.app_id).await }).await
}

/// The app's properties and events with how many users have each (as
/// last counted in the background), loaded only when opened.
#[component]
fn CatalogPanel() -> impl IntoView {
    let app_id = use_app_id();
    let open = RwSignal::new(false);
    let data = Resource::new(
        move || open.get().then(|| app_id.get()),
        |id| async move {
            match id {
                Some(app_id) => load_catalog(super::settings::AppRef { app_id }).await.map(Some),
                None => Ok(None),
            }
        },
    );
    view! {
        <details class="panel" on:toggle=move |_| open.set(true)>
            <summary>"Properties and events"</summary>
            <Transition fallback=Loading>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(Some(c)) => view! {
                            <p class="hint" data-testid="catalog-counted">{c.counted}</p>
                            <h3>"Properties"</h3>
                            <table>
                                <thead><tr><th scope="col">"Property"</th><th scope="col">"Type"</th><th scope="col">"Users"</th></tr></thead>
                                <tbody>{c.properties.into_iter().map(|(n, t, u)| view! { <tr><td>{n}</td><td>{t}</td><td>{users_count(u)}</td></tr> }).collect_view()}</tbody>
                            </table>
                            <h3>"Events"</h3>
                            <table>
                                <thead><tr><th scope="col">"Event"</th><th scope="col">"Users"</th></tr></thead>
                                <tbody>{c.events.into_iter().map(|(n, u)| view! { <tr><td>{n}</td><td>{users_count(u)}</td></tr> }).collect_view()}</tbody>
                            </table>
                        }.into_any(),
                        Ok(None) => ().into_any(),
                        Err(error) => view! { <PageError error/> }.into_any(),
                    }
                })}
            </Transition>
        </details>
    }
}

/// A catalog count, or that it is not counted yet (new since the last count).
fn users_count(n: Option<i64>) -> String {
    n.map_or_else(|| "not counted yet".to_string(), |n| n.to_string())
}

fn operator_key(op: Operator) -> String {
    serde_json::to_value(op).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

fn operator_from_key(key: &str) -> Option<Operator> {
    serde_json::from_value(serde_json::Value::String(key.into())).ok()
}

#[component]
pub fn UsersListPage() -> impl IntoView {
    let app_id = use_app_id();
    let search = RwSignal::new(String::new());
    let conditions = RwSignal::new(Vec::<Condition>::new());
    let sort = RwSignal::new("signed_up".to_string());
    let descending = RwSignal::new(true);
    // Cursors of the pages seen so far; the last one is the current page's.
    let cursors = RwSignal::new(vec![String::new()]);
    let selected = RwSignal::new(HashSet::<String>::new());
    // Known properties, kept between loads so the builder stays usable
    // while a new page loads.
    let properties = RwSignal::new(Vec::<PropertyView>::new());

    let data = Resource::new(
        move || UsersQuery {
            app_id: app_id.get(),
            search: search.get(),
            conditions: serde_json::to_string(&conditions.get()).unwrap_or_default(),
            sort: sort.get(),
            descending: descending.get(),
            after: cursors.with(|c| c.last().cloned().unwrap_or_default()),
        },
        load_users,
    );
    let reset_pages = move || cursors.set(vec![String::new()]);

    let sort_button = move |key: &'static str, label: &'static str| {
        view! {
            <button
                type="button"
                class="sort"
                aria-pressed=move || (sort.get() == key).to_string()
                on:click=move |_| {
                    if sort.get_untracked() == key {
                        descending.update(|d| *d = !*d);
                    } else {
                        sort.set(key.to_string());
                        descending.set(key == "signed_up" || key == "last_seen");
                    }
                    reset_pages();
                }
            >
                {label}
                {move || (sort.get() == key).then(|| if descending.get() { " ↓" } else { " ↑" })}
            </button>
        }
    };

    view! {
        <Title text="Users"/>
        <h1>"Users"</h1>
        <div class="panel">
            <div class="field">
                <label for="user-search">"Search by name, email or user ID"</label>
                <input
                    id="user-search"
                    type="search"
                    on:input=move |ev| {
                        search.set(event_target_value(&ev));
                        reset_pages();
                    }
                />
            </div>
            <ConditionBuilder conditions properties on_change=Callback::new(move |_| reset_pages())/>
            <Transition fallback=Loading>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(page) => {
                            properties.set(page.properties.clone());
                            view! {
                                <p class="count" role="status" aria-live="polite">
                                    {format!("{} {} match", page.matching, if page.matching == 1 { "user" } else { "users" })}
                                    {move || {
                                        let n = selected.with(|s| s.len());
                                        (n > 0).then(|| format!(" · {n} selected"))
                                    }}
                                </p>
                                {move || {
                                    let ids: Vec<String> = selected.with(|s| s.iter().cloned().collect());
                                    (!ids.is_empty()).then(|| {
                                        let n = ids.len();
                                        view! {
                                            <p><a class="button" data-testid="message-selected" href=format!("/apps/{}/messages/new?users={}", app_id.get_untracked(), ids.join(","))>
                                                {format!("Message {n} {}", if n == 1 { "user" } else { "users" })}
                                            </a></p>
                                        }
                                    })
                                }}
                                <UsersTable page=page.clone() selected sort_button/>
                                <div class="pager">
                                    <button
                                        type="button"
                                        disabled=move || cursors.with(|c| c.len() <= 1)
                                        on:click=move |_| cursors.update(|c| { c.pop(); })
                                    >"Previous page"</button>
                                    {page.next.clone().map(|next| view! {
                                        <button type="button" on:click=move |_| cursors.update(|c| c.push(next.clone()))>"Next page"</button>
                                    })}
                                </div>
                            }.into_any()
                        }
                        Err(e @ AppError::Field { .. }) => view! {
                            <p class="field-error" role="alert">{e.field_message("conditions").unwrap_or_else(|| e.to_string())}</p>
                        }.into_any(),
                        Err(error) => view! { <PageError error/> }.into_any(),
                    }
                })}
            </Transition>
        </div>
        <CatalogPanel/>
    }
}

#[component]
fn UsersTable<F, V>(page: UsersPage, selected: RwSignal<HashSet<String>>, sort_button: F) -> impl IntoView
where
    F: Fn(&'static str, &'static str) -> V,
    V: IntoView,
{
    let app_id = use_app_id();
    let ids: Vec<String> = page.users.iter().map(|u| u.id.clone()).collect();
    let all_selected = {
        let ids = ids.clone();
        move || !ids.is_empty() && selected.with(|s| ids.iter().all(|id| s.contains(id)))
    };
    view! {
        <table class="users">
            <thead>
                <tr>
                    <th scope="col">
                        <input
                            type="checkbox"
                            aria-label="Select all users on this page"
                            prop:checked=all_selected.clone()
                            on:change=move |ev| {
                                let on = event_target_checked(&ev);
                                selected.update(|s| for id in &ids { if on { s.insert(id.clone()); } else { s.remove(id); } });
                            }
                        />
                    </th>
                    <th scope="col">{sort_button("name", "Name")}</th>
                    <th scope="col">{sort_button("email", "Email")}</th>
                    <th scope="col">{sort_button("signed_up", "Signed up")}</th>
                    <th scope="col">{sort_button("last_seen", "Last seen")}</th>
                </tr>
            </thead>
            <tbody>
                {page.users.into_iter().map(|u| {
                    let id = u.id.clone();
                    let id2 = u.id.clone();
                    let href = format!("/apps/{}/users/{}", app_id.get_untracked(), u.id);
                    view! {
                        <tr>
                            <td>
                                <input
                                    type="checkbox"
                                    aria-label=format!("Select {}", u.name)
                                    prop:checked=move || selected.with(|s| s.contains(&id))
                                    on:change=move |ev| {
                                        let on = event_target_checked(&ev);
                                        selected.update(|s| { if on { s.insert(id2.clone()); } else { s.remove(&id2); } });
                                    }
                                />
                            </td>
                            <td><a href=href>{u.name.clone()}</a></td>
                            <td>{u.email.clone().unwrap_or_default()}</td>
                            <td>{format_date(u.signed_up_at)}</td>
                            <td>{u.last_seen_at.map(format_date).unwrap_or_else(|| "never".into())}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

/// Rows of {property, operator, value}, ANDed. Inputs fit the property's
/// type; the value applies when the field changes (not on every key).
///
/// Rows are keyed by position and every field is bound on its own, so an
/// edit updates the elements in place: keyboard focus stays where it was and
/// nothing is rebuilt under the pointer.
#[component]
pub fn ConditionBuilder(
    conditions: RwSignal<Vec<Condition>>,
    properties: RwSignal<Vec<PropertyView>>,
    on_change: Callback<()>,
) -> impl IntoView {
    let type_of = move |name: &str| properties.with(|ps| ps.iter().find(|p| p.name == name).map(|p| p.ty));
    let edit = move |i: usize, f: Box<dyn FnOnce(&mut Condition)>| {
        conditions.update(|cs| {
            if let Some(c) = cs.get_mut(i) {
                f(c)
            }
        });
        on_change.run(());
    };
    let row = move |i: usize| {
        let field = move |f: fn(&Condition) -> String| conditions.with(|cs| cs.get(i).map(f).unwrap_or_default());
        let ty = Memo::new(move |_| {
            conditions.with(|cs| cs.get(i).and_then(|c| type_of(&c.property))).unwrap_or(PropType::Text)
        });
        let operator = Memo::new(move |_| conditions.with(|cs| cs.get(i).map(|c| c.operator)));
        let needs_value = Memo::new(move |_| operator.get().is_some_and(|op| op.needs_value()));
        let input_type = move || match (ty.get(), operator.get()) {
            (PropType::Date, Some(Operator::Before | Operator::After)) => "date",
            (PropType::Number | PropType::Date, _) => "number",
            _ => "text",
        };
        let prop_id = format!("cond-{i}-property");
        let op_id = format!("cond-{i}-operator");
        let value_id = format!("cond-{i}-value");
        view! {
            <div class="condition" role="group" aria-label=format!("Condition {}", i + 1)>
                <label class="visually-hidden" for=prop_id.clone()>"Property"</label>
                <select id=prop_id on:change=move |ev| {
                    let name = event_target_value(&ev);
                    let ty = type_of(&name).unwrap_or(PropType::Text);
                    edit(i, Box::new(move |c| {
                        c.property = name;
                        c.operator = Operator::for_type(ty)[0];
                        c.value.clear();
                    }));
                }>
                    {move || properties.get().into_iter().map(|p| {
                        let name = p.name.clone();
                        let is = move || field(|c| c.property.clone()) == name;
                        let label = p.name.clone();
                        view! { <option value=p.name selected=is.clone() prop:selected=is>{label}</option> }
                    }).collect_view()}
                </select>
                <label class="visually-hidden" for=op_id.clone()>"Operator"</label>
                <select id=op_id on:change=move |ev| {
                    if let Some(op) = operator_from_key(&event_target_value(&ev)) {
                        edit(i, Box::new(move |c| c.operator = op));
                    }
                }>
                    {move || {
                        let ty = ty.get();
                        Operator::for_type(ty).iter().map(|op| {
                            let op = *op;
                            let is = move || operator.get() == Some(op);
                            view! { <option value=operator_key(op) selected=is prop:selected=is>{op.label(ty)}</option> }
                        }).collect_view()
                    }}
                </select>
                <Show when=move || needs_value.get()>
                    <label class="visually-hidden" for=value_id.clone()>"Value"</label>
                    <input
                        id=value_id.clone()
                        type=input_type
                        value=move || field(|c| c.value.clone())
                        prop:value=move || field(|c| c.value.clone())
                        on:change=move |ev| {
                            let v = event_target_value(&ev);
                            edit(i, Box::new(move |c| c.value = v));
                        }
                    />
                </Show>
                <button type="button" class="link-button" aria-label=format!("Remove condition {}", i + 1) on:click=move |_| {
                    conditions.update(|cs| { cs.remove(i); });
                    on_change.run(());
                }>"Remove"</button>
            </div>
        }
    };
    view! {
        <fieldset class="conditions">
            <legend>"Filter: users who match all of"</legend>
            // Rows live in their own element so that an empty list still
            // hydrates against a stable boundary.
            <div class="condition-rows">
                <For each=move || 0..conditions.with(|cs| cs.len()) key=|i| *i children=row/>
            </div>
            <button type="button" on:click=move |_| {
                let first = properties.with(|ps| ps.first().map(|p| (p.name.clone(), p.ty)));
                if let Some((name, ty)) = first {
                    conditions.update(|cs| cs.push(Condition { property: name, operator: Operator::for_type(ty)[0], value: String::new() }));
                }
            }>"Add condition"</button>
        </fieldset>
    }
}

#[component]
pub fn UserProfilePage() -> impl IntoView {
    let app_id = use_app_id();
    let params = use_params_map();
    let user = Memo::new(move |_| params.read().get("user_ref").unwrap_or_default());
    let data = Resource::new(move || UserRef { app_id: app_id.get(), user: user.get() }, load_profile);
    view! {
        <Title text="User"/>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(p) => view! {
                        <h1>{p.name.clone()}</h1>
                        <p class="muted">{format!("User ID: {}", p.user_id.clone().unwrap_or_else(|| "anonymous".into()))}</p>
                        <p><a class="button" href=format!("/apps/{}/messages/new?users={}", app_id.get_untracked(), p.id)>"New message"</a></p>
                        <super::inbox::UserConversations app_id=app_id.get_untracked() user=p.id.clone() conversations=p.conversations.clone()/>
                        <super::timeline::UserTimeline app_id=app_id.get_untracked() user=p.id.clone()/>
                        <super::explain::WhyForUser app_id=app_id.get_untracked() user=p.id.clone()/>
                        <section class="panel" aria-labelledby="received-h">
                            <h2 id="received-h">"Messages received"</h2>
                            {if p.manual.is_empty() {
                                view! { <p class="muted">"No manual messages yet."</p> }.into_any()
                            } else {
                                view! { <ul>{p.manual.iter().map(|(mid, title, kind, state, at)| view! {
                                    <li><a href=format!("/apps/{}/messages/{}", app_id.get_untracked(), mid)>{title.clone()}</a>
                                        {format!(" · {kind} · {state} · {}", format_date(*at))}</li>
                                }).collect_view()}</ul> }.into_any()
                            }}
                        </section>
                        <section class="panel" aria-labelledby="props-h">
                            <h2 id="props-h">"Properties"</h2>
                            <table>
                                <tbody>
                                    {p.builtin.iter().chain(p.custom.iter()).map(|v| view! {
                                        <tr><th scope="row">{v.name.clone()}</th><td>{v.value.clone()}</td><td class="muted">{v.ty.clone()}</td></tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </section>
                        <section class="panel" aria-labelledby="events-h">
                            <h2 id="events-h">"Events"</h2>
                            {if p.events.is_empty() {
                                view! { <p class="muted">"No events yet."</p> }.into_any()
                            } else {
                                view! { <ul>{p.events.iter().map(|(name, at, props)| view! {
                                    <li>{name.clone()}" · "{format_date(*at)}{props.clone().map(|p| view! { " " <code class="event-props">{p}</code> })}</li>
                                }).collect_view()}</ul> }.into_any()
                            }}
                        </section>
                        <section class="panel" aria-labelledby="conv-h">
                            <h2 id="conv-h">"Conversation"</h2>
                            {if p.messages.is_empty() {
                                view! { <p class="muted">"No messages yet."</p> }.into_any()
                            } else {
                                view! {
                                    <ol class="conversation">
                                        {p.messages.iter().map(|m| {
                                            let who = if m.from_user { p.name.clone() } else { m.name.clone().unwrap_or_else(|| "The team".into()) };
                                            match &m.card {
                                                // The card's body is the template engine's sanitised HTML (as in the widget).
                                                Some(c) => view! {
                                                    <li class="from-team whisper-card" data-state=c.state.clone()>
                                                        <span class="muted">{who}" · whisper “"{c.whisper.clone()}"” · "{format_date(m.at)}" · "{c.state.clone()}</span>
                                                        <div class="message-text" inner_html=c.html.clone()></div>
                                                    </li>
                                                }.into_any(),
                                                None => view! {
                                                    <li class=if m.from_user { "from-user" } else { "from-team" }>
                                                        <span class="muted">{who}" · "{format_date(m.at)}</span>
                                                        <p class="message-text">{m.text.clone()}</p>
                                                    </li>
                                                }.into_any(),
                                            }
                                        }).collect_view()}
                                    </ol>
                                }.into_any()
                            }}
                        </section>
                    }.into_any(),
                    Err(error) => view! { <PageError error/> }.into_any(),
                }
            })}
        </Suspense>
    }
}
