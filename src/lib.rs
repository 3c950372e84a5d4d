#![recursion_limit = "256"]
//! murmur: a self-hosted customer-messaging platform.
//!
//! One crate, two targets: with `ssr` it is the server (axum + sqlx), with
//! `hydrate` it is the WASM client that hydrates the dashboard. `domain`,
//! `error` and `pages` compile for both; `server` and `storage` only for `ssr`.

#[cfg(feature = "ssr")]
pub mod api;
pub mod domain;
pub mod error;
pub mod models;
pub mod pages;

#[cfg(feature = "ssr")]
pub mod server;
#[cfg(feature = "ssr")]
pub mod storage;

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
