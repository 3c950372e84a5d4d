//! "Your account": the signed-in teammate changes their password and signs
//! out everywhere. Reached from the frame's header (the teammate's name).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;
use serde::{Deserialize, Serialize};

use super::widgets::{last_error, Field, Form, FormError, Loading, PageError};
use crate::{error::AppError, models::AccountView};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangePasswordInput {
    pub current_password: String,
    pub new_password: String,
    pub confirm_password: String,
}

/// Who is signed in and how many sessions they have.
#[server(prefix = "/api", endpoint = "account", output = crate::wire::Json)]
pub async fn load_account() -> Result<AccountView, AppError> {
    use crate::server::{auth, request};
    request::as_teammate(|state, me| async move { auth::account(&state, &me).await }).await
}

/// Changes the signed-in teammate's password; this session stays, every
/// other one ends. Returns how many ended.
#[server(prefix = "/api", endpoint = "account/password", output = crate::wire::Json)]
pub async fn change_password(input: ChangePasswordInput) -> Result<u64, AppError> {
    use crate::server::{auth, request};
    request::as_teammate(|state, me| async move {
        let form = auth::PasswordChange {
            current: &input.current_password,
            new: &input.new_password,
            confirm: &input.confirm_password,
        };
        let ip = request::client_ip(&state);
        auth::change_password(&state, &me, request::session_token().as_deref(), form, ip).await
    })
    .await
}

/// Ends every session of the signed-in teammate, this one included, and
/// sends them to the sign-in page.
#[server(prefix = "/api", endpoint = "account/sign-out-everywhere", output = crate::wire::Json)]
pub async fn sign_out_everywhere() -> Result<(), AppError> {
    use crate::server::{auth, request};
    request::as_teammate(|state, me| async move {
        auth::sign_out_everywhere(&state, &me).await?;
        request::set_session_cookie(&state, None);
        leptos_axum::redirect("/login");
        Ok(())
    })
    .await
}

#[component]
pub fn AccountPage() -> impl IntoView {
    let change = ServerAction::<ChangePassword>::new();
    let everywhere = ServerAction::<SignOutEverywhere>::new();
    // Reloaded after a change: the session count drops.
    let data = Resource::new(move || change.version().get(), |_| load_account());
    view! {
        <Title text="Your account"/>
        <main class="centered">
            <div class="account">
                <p><a href="/">"← Back to the dashboard"</a></p>
                <Transition fallback=Loading>
                    {move || Suspend::new(async move {
                        match data.await {
                            Ok(a) => view! {
                                <section class="card">
                                    <h1>"Your account"</h1>
                                    <p>
                                        <span data-testid="account-name">{a.me.name.clone()}</span>
                                        " · "
                                        <span class="muted">{a.me.email.clone()}</span>
                                        {a.me.is_owner.then(|| view! { " " <span class="badge">"Owner"</span> })}
                                    </p>
                                </section>
                                <PasswordForm action=change/>
                                <SignOutEverywhereForm action=everywhere sessions=a.sessions/>
                            }.into_any(),
                            Err(AppError::Unauthenticated) => view! { <Redirect path="/login"/> }.into_any(),
                            Err(error) => view! { <PageError error/> }.into_any(),
                        }
                    })}
                </Transition>
            </div>
        </main>
    }
}

#[component]
fn PasswordForm(action: ServerAction<ChangePassword>) -> impl IntoView {
    let error = last_error(action.value());
    let done = move || {
        action.value().get().and_then(|r| r.ok()).map(|ended| {
            let others = match ended {
                0 => "You had no other sessions.".to_string(),
                1 => "Your one other session was signed out.".to_string(),
                n => format!("Your {n} other sessions were signed out."),
            };
            view! { <p class="form-done" role="status" data-testid="password-changed">"Password changed. " {others}</p> }
        })
    };
    view! {
        <section class="card" aria-labelledby="password-h">
            <h2 id="password-h">"Change password"</h2>
            <p class="hint">"You stay signed in here; every other session of yours is signed out."</p>
            {done}
            // Drawn again after each try, so typed passwords do not linger.
            {move || {
                action.version().get();
                view! {
                    <Form action>
                        <Field id="current-password" label="Current password" name="input[current_password]" field="current_password" error kind="password" autocomplete="current-password"/>
                        <Field id="new-password" label="New password" name="input[new_password]" field="new_password" error kind="password" autocomplete="new-password" hint="At least 10 characters."/>
                        <Field id="confirm-password" label="New password again" name="input[confirm_password]" field="confirm_password" error kind="password" autocomplete="new-password"/>
                        <FormError error/>
                        <button type="submit" disabled=move || action.pending().get()>"Change password"</button>
                    </Form>
                }
            }}
        </section>
    }
}

#[component]
fn SignOutEverywhereForm(action: ServerAction<SignOutEverywhere>, sessions: i64) -> impl IntoView {
    let error = last_error(action.value());
    let status = match sessions {
        1 => "You are signed in here only.".to_string(),
        n => format!("You are signed in {n} times (this browser and others)."),
    };
    view! {
        <section class="card" aria-labelledby="everywhere-h">
            <h2 id="everywhere-h">"Sign out everywhere"</h2>
            <p data-testid="session-count">{status}</p>
            <p class="hint">"Ends every session of yours, this one included: on a lost or shared computer too. You will sign in again."</p>
            <Form action>
                <FormError error/>
                <button type="submit" class="danger" disabled=move || action.pending().get()>"Sign out everywhere"</button>
            </Form>
        </section>
    }
}
