//! First-run setup, sign-in and sign-out.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{error::AppError, models::SessionInfo};
// The pages themselves are rendered by the server alone (`super::FromServer`).
#[cfg(feature = "ssr")]
use {
    super::widgets::{last_error, Field, FormError, Loading},
    leptos_meta::Title,
    leptos_router::components::Redirect,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetupInput {
    pub name: String,
    pub email: String,
    pub password: String,
    /// The one-time setup token, when murmur asks for one (`server::setup`).
    #[serde(default)]
    pub setup_token: String,
}

/// What the setup page needs to know (read by the server's render of it;
/// the client never asks).
#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetupState {
    pub setup_needed: bool,
    pub token_required: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginInput {
    pub email: String,
    pub password: String,
}

/// Is setup done, who is signed in, which apps do they see.
#[server(prefix = "/api", endpoint = "session", output = crate::wire::Json)]
pub async fn get_session() -> Result<SessionInfo, AppError> {
    use crate::server::{apps, auth, request};
    request::respond(
        async {
            let state = request::state()?;
            let setup_needed = auth::setup_needed(&state).await?;
            let me = match auth::authenticate(&state, request::session_token().as_deref()).await {
                Ok(t) => Some(t),
                Err(AppError::Unauthenticated) => None,
                Err(e) => return Err(e),
            };
            let apps = match &me {
                Some(t) => apps::apps_of(&state, t).await?,
                None => Vec::new(),
            };
            Ok(SessionInfo { setup_needed, me: me.as_ref().map(auth::teammate_view), apps })
        }
        .await,
    )
}

#[server(prefix = "/api", endpoint = "setup/status", output = crate::wire::Json)]
pub async fn setup_status() -> Result<SetupState, AppError> {
    use crate::server::{auth, request};
    request::respond(
        async {
            let state = request::state()?;
            let setup_needed = auth::setup_needed(&state).await?;
            Ok(SetupState { setup_needed, token_required: setup_needed && state.setup.required() })
        }
        .await,
    )
}

/// Creates the owner account (only while none exists, and with the setup
/// token when one is asked for) and signs them in.
#[server(prefix = "/api", endpoint = "setup", output = crate::wire::Json)]
pub async fn setup(input: SetupInput) -> Result<(), AppError> {
    use crate::server::{auth, request};
    request::respond(
        async {
            let state = request::state()?;
            let token =
                auth::setup_owner(&state, &input.name, &input.email, &input.password, &input.setup_token).await?;
            request::set_session_cookie(&state, Some(&token));
            leptos_axum::redirect("/");
            Ok(())
        }
        .await,
    )
}

#[server(prefix = "/api", endpoint = "login", output = crate::wire::Json)]
pub async fn login(input: LoginInput) -> Result<(), AppError> {
    use crate::server::{auth, request};
    request::respond(
        async {
            let state = request::state()?;
            let ip = request::client_ip(&state);
            let token = auth::sign_in(&state, &input.email, &input.password, ip).await?;
            request::set_session_cookie(&state, Some(&token));
            leptos_axum::redirect("/");
            Ok(())
        }
        .await,
    )
}

#[server(prefix = "/api", endpoint = "logout", output = crate::wire::Json)]
pub async fn logout() -> Result<(), AppError> {
    use crate::server::{auth, request};
    request::respond(
        async {
            let state = request::state()?;
            auth::sign_out(&state, request::session_token().as_deref()).await?;
            request::set_session_cookie(&state, None);
            leptos_axum::redirect("/login");
            Ok(())
        }
        .await,
    )
}

#[cfg(feature = "ssr")]
#[component]
pub fn SetupPage() -> impl IntoView {
    let info = Resource::new(|| (), |_| setup_status());
    let action = ServerAction::<Setup>::new();
    let error = last_error(action.value());
    view! {
        <Title text="Set up murmur"/>
        <main class="centered">
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match info.await {
                        Ok(i) if !i.setup_needed => view! {
                            <section class="card">
                                <h1>"murmur is already set up"</h1>
                                <p>"The owner account exists. " <a href="/login">"Sign in"</a> " instead."</p>
                            </section>
                        }.into_any(),
                        i => view! {
                            <section class="card">
                                <h1>"Welcome to murmur"</h1>
                                <p>"Create the owner account. The owner manages apps and teammates."</p>
                                <ActionForm action>
                                    {i.as_ref().is_ok_and(|i| i.token_required).then(|| view! {
                                        <Field id="setup-token" label="Setup token" name="input[setup_token]" field="setup_token" error hint="This murmur can be reached from other machines, so creating the owner account needs the one-time token printed in its log at start (also in the setup.token file in its data directory)."/>
                                    })}
                                    <Field id="setup-name" label="Your name" name="input[name]" field="name" error autocomplete="name"/>
                                    <Field id="setup-email" label="Email" name="input[email]" field="email" error autocomplete="email" inputmode="email"/>
                                    <Field id="setup-password" label="Password" name="input[password]" field="password" error kind="password" autocomplete="new-password" hint="At least 10 characters."/>
                                    <FormError error/>
                                    <button type="submit" disabled=move || action.pending().get()>"Create owner account"</button>
                                </ActionForm>
                            </section>
                        }.into_any(),
                    }
                })}
            </Suspense>
        </main>
    }
}

#[cfg(feature = "ssr")]
#[component]
pub fn LoginPage() -> impl IntoView {
    let info = Resource::new(|| (), |_| get_session());
    let action = ServerAction::<Login>::new();
    let error = last_error(action.value());
    view! {
        <Title text="Sign in"/>
        <main class="centered">
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match info.await {
                        Ok(i) if i.setup_needed => view! { <Redirect path="/setup"/> }.into_any(),
                        Ok(i) if i.me.is_some() => view! { <Redirect path="/"/> }.into_any(),
                        _ => view! {
                            <section class="card">
                                <h1>"Sign in to murmur"</h1>
                                <ActionForm action>
                                    <Field id="login-email" label="Email" name="input[email]" field="email" error autocomplete="username" inputmode="email"/>
                                    <Field id="login-password" label="Password" name="input[password]" field="password" error kind="password" autocomplete="current-password"/>
                                    <FormError error/>
                                    <button type="submit" disabled=move || action.pending().get()>"Sign in"</button>
                                </ActionForm>
                            </section>
                        }.into_any(),
                    }
                })}
            </Suspense>
        </main>
    }
}
