//! `AppState`: what every handler and server function shares.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use super::{
    config::Settings,
    crypto::{Passwords, SecretBox},
    keys::KeyCache,
    setup::SetupGate,
};
use crate::{clock::Clock, engine::Engine, storage::Store};

/// Run-time facts derived from settings and the site configuration.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Origin shown in the install snippet, e.g. `http://127.0.0.1:3000`.
    pub public_url: String,
    /// The host name and origin requests must name (`server::csrf`).
    pub public_host: super::csrf::PublicHost,
    pub trust_proxy: bool,
    /// How long a client has to send a request's headers (slowloris).
    pub header_read_timeout: std::time::Duration,
    /// How long a request may take to be answered, its body's upload included.
    pub request_timeout: std::time::Duration,
    /// How often the property-match scheduler ticks here (`None`: never).
    pub scheduler_period: Option<std::time::Duration>,
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// One connection of its own for `/healthz` (`Store::for_health`).
    pub health: Store,
    pub clock: Arc<dyn Clock>,
    pub secrets: Arc<SecretBox>,
    pub config: Arc<RuntimeConfig>,
    pub leptos_options: LeptosOptions,
    pub keys: Arc<KeyCache>,
    /// Password hashing and checking, a few at a time.
    pub passwords: Arc<Passwords>,
    /// The delivery engine: end-user actions, whispers, open widgets.
    pub engine: Arc<Engine>,
    /// The one-time token first-run setup asks for (`server::setup`).
    pub setup: Arc<SetupGate>,
    /// Rate limits of this instance (REST API, widget connections, sign-in).
    pub limits: Arc<super::limits::Limits>,
    /// This instance's metrics (`/metrics`), the engine's own: on when
    /// `METRICS_TOKEN` is set.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The open connections, bounded in all and per client address.
    pub connections: Arc<super::connections::Connections>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl AppState {
    /// Loads the server key, connects to the database and migrates it.
    pub async fn open(
        settings: &Settings,
        leptos_options: LeptosOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        // The dashboard's files by their hashed names when the site has them.
        let leptos_options = super::assets::with_hashed_names(leptos_options);
        let secrets = SecretBox::load(settings.secret_key.as_ref(), &settings.data_dir).map_err(|e| e.to_string())?;
        let store = Store::connect(&settings.database).await.map_err(|e| format!("cannot open the database: {e}"))?;
        store.migrate().await.map_err(|e| format!("cannot migrate the database: {e}"))?;
        let setup = setup_gate(settings, &store, leptos_options.site_addr).await?;
        let health = store.for_health().await.map_err(|e| format!("cannot open the database: {e}"))?;
        let public_url = settings.public_url.clone().unwrap_or_else(|| format!("http://{}", leptos_options.site_addr));
        let engine = Engine::start(store.clone(), clock.clone(), settings.group_commit, settings.commit_window)
            .await
            .map_err(|e| format!("cannot open the database: {e}"))?;
        let secrets = Arc::new(secrets);
        // Email goes out through the engine's email channel: SMTP with each
        // app's settings (the password opened here) and unsubscribe links
        // signed with a key derived from the server key.
        engine.set_email(crate::engine::send::EmailChannel {
            mailer: crate::engine::email::Mailer::new(std::time::Duration::from_secs(30)),
            target: super::email::smtp_target_fn(store.clone(), secrets.clone()),
            unsubscribe_url: super::email::unsubscribe_url_fn(public_url.clone(), &secrets),
        });
        // Web Push with each app's VAPID key (opened here); murmur's public
        // URL (or a mailto: at its host) is the VAPID contact.
        engine.set_push(super::push::channel(secrets.clone(), super::push::vapid_contact(&public_url), false));
        // How many property and event names an app may have (MAX_PROPERTY_NAMES, MAX_EVENT_NAMES).
        engine.set_caps(settings.catalog_caps);
        let limits = Arc::new(super::limits::Limits::new(settings, clock.clone()));
        if let Some(token) = &settings.metrics_token {
            engine.metrics.turn_on(token.expose());
        }
        let metrics = engine.metrics.clone();
        Ok(AppState {
            engine,
            store,
            health,
            clock,
            secrets,
            config: Arc::new(RuntimeConfig {
                public_url,
                public_host: super::csrf::PublicHost::new(settings.public_url.as_deref()),
                trust_proxy: settings.trust_proxy,
                header_read_timeout: settings.header_read_timeout,
                request_timeout: settings.request_timeout,
                scheduler_period: settings.scheduler_period,
            }),
            leptos_options,
            keys: Arc::new(KeyCache::default()),
            passwords: Arc::new(Passwords::default()),
            setup: Arc::new(setup),
            limits,
            metrics,
            connections: super::connections::Connections::new(
                settings.max_connections,
                settings.max_connections_per_address.filter(|_| !settings.trust_proxy),
            ),
        })
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }
}

/// The setup token: made (or kept from an earlier start) and logged while no
/// account exists and murmur can be reached from other machines.
async fn setup_gate(settings: &Settings, store: &Store, listen: std::net::SocketAddr) -> Result<SetupGate, String> {
    let fresh = store.count_teammates().await.map_err(|e| format!("cannot open the database: {e}"))? == 0;
    let local = super::setup::reachable_only_locally(listen, settings.public_url.as_deref(), settings.trust_proxy);
    if !fresh || local {
        return Ok(SetupGate::open(&settings.data_dir));
    }
    let gate = SetupGate::with_token(&settings.data_dir)
        .map_err(|e| format!("cannot write the setup token into {}: {e}", settings.data_dir.display()))?;
    tracing::warn!(
        token = gate.token().unwrap_or_default(),
        file = %gate.path().display(),
        "murmur is not set up yet and can be reached from other machines: the setup page asks for this one-time setup token"
    );
    Ok(gate)
}
