//! The server binary's parts (feature `ssr`): configuration, state, HTTP
//! router, cross-site protection, and the services the server functions call.

pub mod apps;
pub mod auth;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod csrf;
pub mod http;
pub mod ingest;
pub mod jwt;
pub mod keys;
pub mod request;
pub mod state;
pub mod users;
pub mod whispers;
pub mod widget;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{ConfigError, Settings};
pub use state::AppState;

use std::{net::SocketAddr, process::ExitCode, sync::Arc};

use leptos::config::get_configuration;
use tokio::net::TcpListener;

/// What the binary does: read configuration, open the database, serve until
/// SIGTERM or Ctrl-C. Bad configuration is one clear line and exit code 2.
pub async fn main() -> ExitCode {
    // A missing .env is normal; a malformed one is a configuration error.
    if let Err(e) = dotenvy::dotenv() {
        if !e.not_found() {
            eprintln!("murmur: cannot read .env: {e}");
            return ExitCode::from(2);
        }
    }
    let settings = match Settings::from_env(|k| std::env::var(k).ok()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("murmur: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&settings);

    let leptos_options = match get_configuration(Some(&settings.site_config)) {
        Ok(conf) => conf.leptos_options,
        Err(e) => {
            eprintln!("murmur: cannot read site configuration {}: {e}", settings.site_config);
            return ExitCode::from(2);
        }
    };
    let addr = leptos_options.site_addr;
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("murmur: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let state = match AppState::open(&settings, leptos_options, Arc::new(SystemClock)).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("murmur: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(%addr, backend = state.store.backend_name(), public_url = %state.config.public_url, "murmur listening");
    if let Err(e) = serve(listener, state.clone(), shutdown_signal()).await {
        eprintln!("murmur: server error: {e}");
        return ExitCode::from(1);
    }
    state.store.close().await;
    tracing::info!("murmur stopped");
    ExitCode::SUCCESS
}

/// Serves the app on `listener` until `shutdown` completes, letting requests
/// in flight finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    widget::live::listen(state.clone());
    state.live.start_heartbeat(widget::socket::HEARTBEAT);
    let live = state.live.clone();
    let app = http::router(state);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Open widgets are told to reconnect (to another instance, or to this one once back).
            live.close_all();
        })
        .await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received, finishing requests in flight");
}

fn init_logging(settings: &Settings) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if settings.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}
