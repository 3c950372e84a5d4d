//! The dashboard frame around every app page: navigation, app switcher,
//! the signed-in teammate (a link to their account) and sign-out.

use leptos::{prelude::*, server_fn::ServerFn};
use leptos_router::{
    components::{Outlet, Redirect, A},
    hooks::{use_navigate, use_params_map},
};

use super::{
    auth::Logout,
    widgets::{Loading, PageError},
};
use crate::{error::AppError, models::Dashboard};

/// The signed-in teammate, their apps and the current one.
#[server(prefix = "/api", endpoint = "dashboard", output = crate::wire::Json)]
pub async fn load_dashboard(app_id: String) -> Result<Dashboard, AppError> {
    use crate::server::{apps, auth, request};
    request::as_teammate(|state, me| async move {
        let app = apps::app_of(&state, &me, &app_id).await?;
        Ok(Dashboard {
            me: auth::teammate_view(&me),
            apps: apps::apps_of(&state, &me).await?,
            identity_enforced: apps::identity_enforced(&state, &app.id).await?,
            app: apps::summary(&app),
        })
    })
    .await
}

/// Whether the current app's widget requires identity verification: the
/// frame warns while it does not, and the Settings page, which changes it,
/// keeps it current.
#[derive(Debug, Clone, Copy)]
pub struct IdentityEnforced(pub RwSignal<bool>);

/// The current app's id from the URL.
pub fn use_app_id() -> Memo<String> {
    let params = use_params_map();
    Memo::new(move |_| params.read().get("app_id").unwrap_or_default())
}

#[component]
pub fn AppFrame() -> impl IntoView {
    let app_id = use_app_id();
    let data = Resource::new(move || app_id.get(), load_dashboard);
    view! {
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(d) => view! { <Frame d/> }.into_any(),
                    Err(AppError::Unauthenticated) => view! { <Redirect path="/login"/> }.into_any(),
                    Err(error) => view! { <main class="centered"><PageError error/></main> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Frame(d: Dashboard) -> impl IntoView {
    let base = format!("/apps/{}", d.app.id);
    let link = move |rel: &str| if rel.is_empty() { base.clone() } else { format!("{base}/{rel}") };
    let navigate = use_navigate();
    let current = d.app.id.clone();
    let enforced = RwSignal::new(d.identity_enforced);
    provide_context(IdentityEnforced(enforced));
    let settings = link("settings");
    let mut nav = vec![
        ("", "Overview"),
        ("whispers", "Whispers"),
        ("users", "Users"),
        ("messages", "Messages"),
        ("inbox", "Inbox"),
        ("settings", "Settings"),
    ];
    if d.me.is_owner {
        nav.push(("audit", "Audit log"));
    }
    view! {
        <div class="layout">
            <header class="topbar">
                <a class="brand" href="/">"murmur"</a>
                <div class="switcher">
                    <label for="app-switcher">"App"</label>
                    <select
                        id="app-switcher"
                        on:change=move |ev| {
                            let id = event_target_value(&ev);
                            if id == "__new" {
                                navigate("/new-app", Default::default());
                            } else {
                                navigate(&format!("/apps/{id}"), Default::default());
                            }
                        }
                    >
                        {d.apps.iter().map(|a| {
                            let selected = a.id == current;
                            view! { <option value=a.id.clone() selected=selected>{a.name.clone()}</option> }
                        }).collect_view()}
                        <option value="__new">"+ New app"</option>
                    </select>
                </div>
                <div class="me">
                    <span class="avatar" aria-hidden="true">{d.me.initials.clone()}</span>
                    <a class="me-name" href="/account" title="Your account: password, sign out everywhere">{d.me.name.clone()}</a>
                    // A plain form: the server answers with a redirect to the
                    // sign-in page, which it sends without the client.
                    <form method="post" action=Logout::url()>
                        <button type="submit" class="link-button">"Sign out"</button>
                    </form>
                </div>
            </header>
            <nav class="sidebar" aria-label="Main">
                <ul>
                    {nav.into_iter().map(|(rel, label)| view! {
                        <li><A href=link(rel) exact=true>{label}</A></li>
                    }).collect_view()}
                </ul>
                <p class="sidebar-demo"><a href=format!("/demo/{}", current) target="_blank" rel="external noopener" data-testid="demo-link">"Demo page ↗"</a></p>
            </nav>
            <main class="content" id="main">
                {move || (!enforced.get()).then(|| view! {
                    <div class="identity-warning" role="status" data-testid="identity-off-warning">
                        <strong>"Identity verification is off for this app."</strong>
                        " Anyone can open the widget as any userId, read that user's conversation and write as them. "
                        <a href=settings.clone()>"Require verification in Settings"</a>
                    </div>
                })}
                <Outlet/>
            </main>
        </div>
    }
}
