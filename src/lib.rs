#![recursion_limit = "256"]
//! murmur: a self-hosted customer-messaging platform.
//!
//! One crate, two targets: with `ssr` it is the server (axum + sqlx), with
//! `hydrate` it is the WASM client that hydrates the dashboard. `domain`,
//! `error`, `models` and `pages` compile for both; the rest only for `ssr`.

#[cfg(feature = "ssr")]
pub mod api;
#[cfg(feature = "ssr")]
pub mod clock;
pub mod domain;
#[cfg(feature = "ssr")]
pub mod engine;
pub mod error;
pub mod models;
pub mod pages;
pub mod wire;

#[cfg(feature = "ssr")]
pub mod http;
#[cfg(feature = "ssr")]
pub mod metrics;
#[cfg(feature = "ssr")]
pub mod refresh;
#[cfg(feature = "ssr")]
pub mod server;
#[cfg(feature = "ssr")]
pub mod storage;
#[cfg(feature = "ssr")]
pub mod widget;

/// Entry point of the WASM client: hydrates the server-rendered page. The
/// dashboard's pages are lazy routes (`pages::App`): hydration waits for the
/// current page's WASM chunk, so it is asynchronous (Leptos' `hydrate_lazy`,
/// done here so the page is marked once it is interactive).
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    // Debug builds log a panic's message and place in the console. The
    // release WASM aborts at once on a panic, with no message to log
    // (ARCHITECTURE.md, "The release WASM"): no hook to carry there.
    #[cfg(debug_assertions)]
    console_error_panic_hook::set_once();
    // The executor that drives hydration's futures (an error only means it
    // is already set up).
    let _ = any_spawner::Executor::init_wasm_bindgen();
    leptos::task::spawn_local(async {
        let body = leptos::prelude::document().body().expect("a page has a body");
        let owner = leptos::mount::hydrate_from_async(body.clone(), pages::App).await;
        owner.forget();
        // Lets browser tests wait until the page is interactive.
        let _ = body.set_attribute("data-hydrated", "true");
    });
}
