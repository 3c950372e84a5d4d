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

#[cfg(feature = "ssr")]
pub mod http;
#[cfg(feature = "ssr")]
pub mod metrics;
#[cfg(feature = "ssr")]
pub mod server;
#[cfg(feature = "ssr")]
pub mod storage;
#[cfg(feature = "ssr")]
pub mod widget;

/// Entry point of the WASM client: hydrates the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(pages::App);
    // Lets browser tests wait until the page is interactive.
    if let Some(body) = leptos::prelude::document().body() {
        let _ = body.set_attribute("data-hydrated", "true");
    }
}
