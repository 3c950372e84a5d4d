//! The server binary's start and its HTTP router: health check, the REST
//! API, the widget, the Leptos pages and server functions, static files,
//! and the cross-site guard in front of all of it.

use std::{net::SocketAddr, process::ExitCode, sync::Arc};

use axum::{extract::State, http::StatusCode, middleware, response::IntoResponse, routing::get, Json, Router};
use leptos::config::get_configuration;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio::net::TcpListener;

use crate::{
    pages::{shell, App},
    server::{csrf, AppState, Settings, SystemClock},
};

pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let context = {
        let state = state.clone();
        move || provide_context(state.clone())
    };
    Router::new()
        .route("/healthz", get(healthz))
        .merge(crate::api::router())
        .merge(crate::widget::router(&state))
        .leptos_routes_with_context(&state, routes, context, {
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(middleware::from_fn(csrf::refuse_cross_site))
        .with_state(state)
}

/// 200 when the database answers, 503 when it does not.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({ "status": "ok", "database": state.store.backend_name() }))),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "status": "unavailable", "database": state.store.backend_name() })),
            )
        }
    }
}

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
    state.engine.listen();
    state.engine.hub.start_heartbeat(crate::widget::socket::HEARTBEAT);
    state.engine.start_scheduler(std::time::Duration::from_secs(5));
    let hub = state.engine.hub.clone();
    let app = router(state);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Open widgets are told to reconnect (to another instance, or to this one once back).
            hub.close_all();
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
