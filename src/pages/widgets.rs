//! Small building blocks shared by the pages: labelled fields with their
//! error message, form-level errors, loading and error states.

use leptos::prelude::*;

use crate::error::AppError;

/// The error of an action's last result, if it failed.
pub fn last_error<T: Clone + Send + Sync + 'static>(
    value: impl Get<Value = Option<Result<T, AppError>>> + Send + Sync + 'static,
) -> Signal<Option<AppError>> {
    Signal::derive(move || value.get().and_then(|r| r.err()))
}

/// A labelled input whose server-side message shows beside it.
#[component]
pub fn Field(
    /// Unique on the page: the input's id and error id derive from it.
    id: &'static str,
    label: &'static str,
    /// Form field name, e.g. `input[email]`.
    name: &'static str,
    /// Which `AppError` field this input reports (`email`, `name`, …).
    field: &'static str,
    error: Signal<Option<AppError>>,
    #[prop(default = "text")] kind: &'static str,
    #[prop(default = "off")] autocomplete: &'static str,
    #[prop(optional)] hint: Option<&'static str>,
    #[prop(optional)] inputmode: Option<&'static str>,
) -> impl IntoView {
    let message = move || error.get().and_then(|e| e.field_message(field));
    let error_id = format!("{id}-error");
    let hint_id = format!("{id}-hint");
    let described = if hint.is_some() { format!("{hint_id} {error_id}") } else { error_id.clone() };
    view! {
        <div class="field">
            <label for=id>{label}</label>
            {hint.map(|h| view! { <p class="hint" id=hint_id.clone()>{h}</p> })}
            <input
                id=id
                name=name
                type=kind
                inputmode=inputmode
                autocomplete=autocomplete
                aria-invalid=move || if message().is_some() { "true" } else { "false" }
                aria-describedby=described
            />
            <p class="field-error" id=error_id aria-live="polite">{message}</p>
        </div>
    }
}

/// A message for the whole form (throttling, wrong password, conflicts).
#[component]
pub fn FormError(error: Signal<Option<AppError>>) -> impl IntoView {
    move || error.get().and_then(|e| e.form_message()).map(|m| view! { <p class="form-error" role="alert">{m}</p> })
}

#[component]
pub fn Loading() -> impl IntoView {
    view! { <p class="loading" role="status">"Loading…"</p> }
}

/// An error that stops a page from showing.
#[component]
pub fn PageError(error: AppError) -> impl IntoView {
    let text = match &error {
        AppError::NotFound => "This app does not exist, or you do not have access to it.".to_string(),
        other => other.to_string(),
    };
    view! {
        <section class="card" role="alert">
            <h1>"Cannot show this page"</h1>
            <p>{text}</p>
            <p><a href="/">"Go to the dashboard"</a></p>
        </section>
    }
}
