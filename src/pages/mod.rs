//! The dashboard's pages (server-rendered, then hydrated in the browser).
//! Server functions sit beside the page that calls them; their bodies run
//! only on the server and call `crate::server` services.

mod account;
mod apps;
mod audit;
mod auth;
mod explain;
mod frame;
mod inbox;
mod messages;
mod office_hours;
mod overview;
pub mod preview;
mod push;
mod recall;
mod settings;
mod timeline;
mod users;
mod whispers;
mod widgets;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, Link, Meta, MetaTags, Title};
use leptos_router::{
    components::{ParentRoute, Route, Router, Routes},
    lazy_route, path, Lazy, LazyRoute, SsrMode,
};

pub use auth::{get_session, Login, Logout, Setup};

// The pages the server sends without the client (`PAGES_WITHOUT_CLIENT`)
// and `/`, which only ever answers with a redirect, are rendered by the
// server alone: in the browser, a link or a redirect to one of them loads it
// from the server (`FromServer`), so the client holds none of their code
// (BENCHMARKS.md, "The dashboard's weight").
#[cfg(feature = "ssr")]
use auth::{LoginPage, SetupPage};
#[cfg(not(feature = "ssr"))]
use {FromServer as Home, FromServer as LoginPage, FromServer as SetupPage};

/// The HTML document around the app (server only renders this), and the
/// security headers every dashboard page is sent with.
///
/// The sign-in and setup pages are plain HTML forms that post to their
/// server functions and work without any script, so they are sent without
/// the WASM client (ARCHITECTURE.md, "Pages without the client"): the body
/// is marked hydrated at once, as there is nothing to wait for.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    security_headers();
    let client = page_needs_client();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <AutoReload options=options.clone()/>
                // The style sheet and the scripts by their hashed names
                // when the build has them (`server::assets`).
                <HashedStylesheet id="leptos" options=options.clone()/>
                {client.then(|| view! { <HydrationScripts options/> })}
                <MetaTags/>
            </head>
            <body data-hydrated=(!client).then_some("true")>
                <App/>
                {(!client).then(form_script)}
            </body>
        </html>
    }
}

/// The pages sent without the WASM client: forms only, no reactive parts.
pub const PAGES_WITHOUT_CLIENT: [&str; 2] = ["/login", "/setup"];

/// Does the page being rendered need the WASM client?
fn page_needs_client() -> bool {
    #[cfg(feature = "ssr")]
    if let Some(parts) = use_context::<axum::http::request::Parts>() {
        return !PAGES_WITHOUT_CLIENT.contains(&parts.uri.path());
    }
    true
}

/// After a form's post failed, the framework sends the browser back to the
/// page with the error in its address (`?__path=…&__err=…`), and the page
/// shows it beside the field, but the browser has emptied the form. This
/// small script (allowed by the response's nonce; the form works without
/// it) keeps what was typed, except passwords and tokens, in the tab's
/// session storage while the post is away, puts it back when the post came
/// back with an error, and takes the error out of the address bar so that a
/// reload or the next post does not carry it.
const FORM_SCRIPT: &str = r#"(function () {
  var key = 'murmur-form:' + location.pathname;
  var saved = sessionStorage.getItem(key);
  sessionStorage.removeItem(key);
  if (/[?&]__err=/.test(location.search)) {
    history.replaceState(null, '', location.pathname);
    var values = saved ? JSON.parse(saved) : {};
    Object.keys(values).forEach(function (name) {
      var input = document.querySelector('form input[name="' + CSS.escape(name) + '"]');
      if (input && !input.value) input.value = values[name];
    });
  }
  document.addEventListener('submit', function (e) {
    var values = {};
    e.target.querySelectorAll('input[name]:not([type=password]):not([name*=token])').forEach(function (input) {
      values[input.name] = input.value;
    });
    sessionStorage.setItem(key, JSON.stringify(values));
  });
})();"#;

fn form_script() -> impl IntoView {
    let nonce = leptos::nonce::use_nonce().map(|n| n.to_string());
    view! { <script nonce=nonce inner_html=FORM_SCRIPT></script> }
}

/// The dashboard's Content-Security-Policy: scripts only from murmur itself
/// or carrying this response's nonce (Leptos' inline hydration script and
/// resource data get it from leptos_axum), WebAssembly allowed to compile,
/// styles, images, fetches and the inbox's event stream from murmur only, no
/// plugins, no `<base>`, forms posting only here, and no framing anywhere
/// (`frame-ancestors 'none'`, and `X-Frame-Options` for older browsers).
/// The widget's frame and the unsubscribe page send their own.
#[cfg(feature = "ssr")]
pub fn content_security_policy(nonce: Option<&str>) -> String {
    let nonce = nonce.map(|n| format!(" 'nonce-{n}'")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'{nonce} 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

#[cfg(feature = "ssr")]
fn security_headers() {
    use axum::http::{header, HeaderValue};
    let Some(res) = use_context::<leptos_axum::ResponseOptions>() else { return };
    let nonce = leptos::nonce::use_nonce();
    let csp = content_security_policy(nonce.as_deref());
    if let Ok(v) = HeaderValue::from_str(&csp) {
        res.insert_header(header::CONTENT_SECURITY_POLICY, v);
    }
    res.insert_header(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res.insert_header(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    res.insert_header(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Async rendering: the server answers only once the page's data is
    // known, so "not signed in" is a real redirect, not a flash of content.
    view! {
        <Link rel="icon" href="/favicon.ico"/>
        <Meta name="color-scheme" content="light"/>
        <Title formatter=|t: String| if t.is_empty() { "murmur".to_string() } else { format!("{t} · murmur") }/>
        <Router>
            <Routes fallback=NotFound>
                <Route path=path!("/") view=Home ssr=SsrMode::Async/>
                <Route path=path!("/setup") view=SetupPage ssr=SsrMode::Async/>
                <Route path=path!("/login") view=LoginPage ssr=SsrMode::Async/>
                <Route path=path!("/new-app") view={Lazy::<NewAppRoute>::new()} ssr=SsrMode::Async/>
                <Route path=path!("/account") view={Lazy::<AccountRoute>::new()} ssr=SsrMode::Async/>
                <ParentRoute path=path!("/apps/:app_id") view=frame::AppFrame ssr=SsrMode::Async>
                    <Route path=path!("") view={Lazy::<OverviewRoute>::new()}/>
                    <Route path=path!("whispers") view={Lazy::<WhispersRoute>::new()}/>
                    <Route path=path!("whispers/:whisper_id") view={Lazy::<WhisperEditorRoute>::new()}/>
                    <Route path=path!("users") view={Lazy::<UsersListRoute>::new()}/>
                    <Route path=path!("users/:user_ref") view={Lazy::<UserProfileRoute>::new()}/>
                    <Route path=path!("messages") view={Lazy::<MessagesRoute>::new()}/>
                    <Route path=path!("messages/:message_id") view={Lazy::<MessageRoute>::new()}/>
                    <Route path=path!("inbox/:conversation_id?") view={Lazy::<InboxRoute>::new()}/>
                    <Route path=path!("teammates/:teammate_id") view={Lazy::<TeammateRoute>::new()}/>
                    <Route path=path!("settings") view={Lazy::<SettingsRoute>::new()}/>
                    <Route path=path!("audit") view={Lazy::<AuditLogRoute>::new()}/>
                </ParentRoute>
            </Routes>
        </Router>
    }
}

/// A dashboard page whose code the WASM client loads only when the page is
/// first shown: with `cargo leptos build --split` each becomes a WASM chunk
/// of its own (ARCHITECTURE.md, "Lazy pages"), and the sign-in,
/// setup and home routes, the app frame and what they share stay in the
/// first file. The page keeps loading its own data (no `data` half).
macro_rules! lazy_page {
    ($route:ident, $module:ident :: $page:ident) => {
        struct $route;

        #[lazy_route]
        impl LazyRoute for $route {
            fn data() -> Self {
                $route
            }

            fn view(_this: Self) -> AnyView {
                use $module::$page;
                view! { <$page/> }.into_any()
            }
        }
    };
}

/// The parts of pages (`#[lazy]` functions a page calls when it shows that
/// part), each with its page's lazy route, as the split manifest names them
/// (the function's name in snake case; a route's is its type's and
/// `_view`): a part's bundle leaves out what its page's bundle holds
/// (`server::bundles`; ARCHITECTURE.md, "Parts of pages"). The server
/// checks at start that each is in the manifest once.
pub const PAGE_PARTS: &[(&str, &str)] = &[
    ("message_composer", "message_route_view"),
    ("message_results", "message_route_view"),
    ("whisper_why", "whisper_editor_route_view"),
];

lazy_page!(NewAppRoute, apps::NewAppPage);
lazy_page!(AccountRoute, account::AccountPage);
lazy_page!(OverviewRoute, overview::OverviewPage);
lazy_page!(WhispersRoute, whispers::WhispersPage);
lazy_page!(WhisperEditorRoute, whispers::WhisperEditorPage);
lazy_page!(UsersListRoute, users::UsersListPage);
lazy_page!(UserProfileRoute, users::UserProfilePage);
lazy_page!(MessagesRoute, messages::MessagesPage);
lazy_page!(MessageRoute, messages::MessagePage);
lazy_page!(InboxRoute, inbox::InboxPage);
lazy_page!(TeammateRoute, inbox::TeammatePageView);
lazy_page!(SettingsRoute, settings::SettingsPage);
lazy_page!(AuditLogRoute, audit::AuditLogPage);

/// In the browser, a route the server alone renders: the address is loaded
/// from the server, replacing the entry the router made for it.
#[cfg(not(feature = "ssr"))]
#[component]
fn FromServer() -> impl IntoView {
    let location = leptos_router::hooks::use_location();
    // The router's `search` comes without its `?`.
    let (path, search) = (location.pathname.get_untracked(), location.search.get_untracked());
    let href = if search.is_empty() { path } else { format!("{path}?{search}") };
    if let Err(e) = window().location().replace(&href) {
        leptos::logging::error!("could not load {href}: {e:?}");
    }
}

/// `/`: sends the visitor where they belong (setup, sign-in, first app, or
/// their first app's overview).
#[cfg(feature = "ssr")]
#[component]
fn Home() -> impl IntoView {
    let info = Resource::new(|| (), |_| get_session());
    view! {
        <Suspense fallback=widgets::Loading>
            {move || Suspend::new(async move {
                let path = match info.await {
                    Ok(i) if i.setup_needed => "/setup".to_string(),
                    Ok(i) if i.me.is_none() => "/login".to_string(),
                    Ok(i) => match i.apps.first() {
                        Some(app) => format!("/apps/{}", app.id),
                        None => "/new-app".to_string(),
                    },
                    Err(_) => "/login".to_string(),
                };
                view! { <leptos_router::components::Redirect path/> }
            })}
        </Suspense>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        res.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Not found"/>
        <main class="centered">
            <section class="card">
                <h1>"Page not found"</h1>
                <p>"There is nothing at this address."</p>
                <p><a href="/">"Go to the dashboard"</a></p>
            </section>
        </main>
    }
}
