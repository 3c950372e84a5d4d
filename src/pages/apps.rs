//! Creating an app. Its identity-verification secret is shown once, here.

use leptos::prelude::*;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};

use super::widgets::{last_error, Field, Form, FormError, Loading};
use crate::{error::AppError, models::CreatedApp};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewAppInput {
    pub name: String,
}

#[server(prefix = "/api", endpoint = "apps/create", output = crate::wire::Json)]
pub async fn create_app(input: NewAppInput) -> Result<CreatedApp, AppError> {
    use crate::server::{apps, request};
    request::as_teammate(|state, me| async move { apps::create_app(&state, &me, &input.name).await }).await
}

/// `/new-app`: for a signed-in teammate only (others are sent to sign in,
/// or to setup on a fresh install, with a real redirect).
#[component]
pub fn NewAppPage() -> impl IntoView {
    use leptos_router::components::Redirect;
    let info = Resource::new(|| (), |_| super::get_session());
    view! {
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match info.await {
                    Ok(i) if i.setup_needed => view! { <Redirect path="/setup"/> }.into_any(),
                    Ok(i) if i.me.is_some() => view! { <NewAppForm/> }.into_any(),
                    _ => view! { <Redirect path="/login"/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn NewAppForm() -> impl IntoView {
    let action = ServerAction::<CreateApp>::new();
    let error = last_error(action.value());
    let created = move || action.value().get().and_then(|r| r.ok());
    view! {
        <Title text="New app"/>
        <main class="centered">
            <section class="card">
                <Show
                    when=move || created().is_some()
                    fallback=move || view! {
                        <h1>"Create an app"</h1>
                        <p>"An app is one website or product whose users you talk to."</p>
                        <Form action>
                            <Field id="app-name" label="App name" name="input[name]" field="name" error/>
                            <FormError error/>
                            <button type="submit" disabled=move || action.pending().get()>"Create app"</button>
                        </Form>
                        <p class="muted"><a href="/">"Back to the dashboard"</a></p>
                    }
                >
                    {move || created().map(|c| view! {
                        <h1>{format!("{} is ready", c.app.name)}</h1>
                        <div class="secret-once" role="status">
                            <p><strong>"Identity verification secret"</strong>" — copy it now, it will not be shown again:"</p>
                            <code class="secret" data-testid="identity-secret">{c.identity_secret.clone()}</code>
                            <p class="hint">"Your server signs user JWTs with it. You can roll a new one in Settings."</p>
                        </div>
                        <p><a class="button" href=format!("/apps/{}/settings", c.app.id)>"Open the app's settings"</a></p>
                    })}
                </Show>
            </section>
        </main>
    }
}
