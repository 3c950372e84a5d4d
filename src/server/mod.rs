//! The dashboard's server side (feature `ssr`): configuration, state,
//! cross-site protection, request helpers, crypto, and the services the
//! server functions call (`auth`, `apps`, `users`, `whispers`). The HTTP
//! router and the binary's start live in `crate::http`; end-user writes and
//! delivery in `crate::engine`.

pub mod apps;
pub mod assets;
pub mod auth;
pub mod bundles;
pub mod config;
pub mod connections;
pub mod conversations;
pub mod crypto;
pub mod csrf;
pub mod demo;
pub mod email;
pub mod explain;
pub mod jwt;
pub mod keys;
pub mod limits;
pub mod manual;
pub mod office;
pub mod overview;
pub mod push;
pub mod recall;
pub mod request;
pub mod setup;
pub mod state;
pub mod timeline;
pub mod unsubscribe;
pub mod users;
pub mod whispers;

pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use crate::http::serve;
pub use config::{ConfigError, Settings};
pub use state::AppState;
