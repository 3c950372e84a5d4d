//! The "Why?" panel: why a user did or did not get a whisper or a manual
//! message, in plain words (`domain::explain`). On a profile the teammate
//! picks the whisper or message; on a whisper or message page they enter
//! the user. Loaded on request (server actions), so the panel adds nothing
//! to the page's first render.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{
    domain::explain::Verdict,
    error::AppError,
    models::{Explanation, WhyChoice},
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhyQuery {
    pub app_id: String,
    /// userId or murmur id.
    pub user: String,
    /// `whisper` or `message`.
    pub kind: String,
    pub id: String,
}

#[server(prefix = "/api", endpoint = "why/choices", output = crate::wire::Json)]
pub async fn why_choices(input: super::settings::AppRef) -> Result<Vec<WhyChoice>, AppError> {
    use crate::server::{explain, request};
    request::as_teammate(|state, me| async move { explain::choices(&state, &me, &input.app_id).await }).await
}

#[server(prefix = "/api", endpoint = "why/explain", output = crate::wire::Json)]
pub async fn why_explain(input: WhyQuery) -> Result<Explanation, AppError> {
    use crate::server::{explain, request};
    request::as_teammate(|state, me| async move {
        explain::explain(&state, &me, &input.app_id, &input.user, &input.kind, &input.id).await
    })
    .await
}

/// The answer as a list of steps; audience checks as a table of
/// condition, the user's value, and whether it passed.
#[component]
fn AnswerView(e: Explanation) -> impl IntoView {
    let verdict = match e.answer.verdict {
        Verdict::Yes => "yes",
        Verdict::No => "no",
        Verdict::Waiting => "waiting",
    };
    view! {
        <div class="why-answer" data-verdict=verdict data-testid="why-answer">
            <p class="why-headline"><strong>{e.answer.headline.clone()}</strong></p>
            <ol class="why-steps">
                {e.answer.steps.into_iter().map(|s| {
                    let mark = match s.ok { Some(true) => "✓ ", Some(false) => "✗ ", None => "· " };
                    let state = match s.ok { Some(true) => "pass", Some(false) => "fail", None => "note" };
                    view! {
                        <li data-state=state>
                            <span aria-hidden="true">{mark}</span>{s.text}
                            {(!s.conditions.is_empty()).then(|| view! {
                                <table class="why-conditions">
                                    <thead><tr><th scope="col">"Condition"</th><th scope="col">"Their value"</th><th scope="col">"Result"</th></tr></thead>
                                    <tbody>
                                        {s.conditions.into_iter().map(|c| view! {
                                            <tr data-passed=c.passed.to_string()>
                                                <td>{c.test_text()}</td>
                                                <td>{c.value_shown()}</td>
                                                <td>{if c.passed { "passed" } else { "failed" }}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            })}
                        </li>
                    }
                }).collect_view()}
            </ol>
        </div>
    }
}

fn answer_or_error(result: Option<Result<Explanation, AppError>>) -> impl IntoView {
    match result {
        None => ().into_any(),
        Some(Ok(e)) => view! { <AnswerView e/> }.into_any(),
        Some(Err(e)) => {
            let text = e.field_message("user").or_else(|| e.field_message("subject")).unwrap_or_else(|| e.to_string());
            view! { <p class="field-error" role="alert">{text}</p> }.into_any()
        }
    }
}

/// On a user's profile: pick a whisper or message, read why.
#[component]
pub fn WhyForUser(app_id: String, user: String) -> impl IntoView {
    let choices = ServerAction::<WhyChoices>::new();
    let explain = ServerAction::<WhyExplain>::new();
    let app = app_id.clone();
    view! {
        <section class="panel" aria-labelledby="why-h">
            <h2 id="why-h">"Why did (or didn't) they get it?"</h2>
            {move || match choices.value().get() {
                None => {
                    let app = app.clone();
                    view! {
                        <button type="button" data-testid="why-open" on:click=move |_| {
                            choices.dispatch(WhyChoices { input: super::settings::AppRef { app_id: app.clone() } });
                        }>"Ask about a whisper or message"</button>
                    }.into_any()
                }
                Some(Err(e)) => view! { <p class="field-error" role="alert">{e.to_string()}</p> }.into_any(),
                Some(Ok(list)) => {
                    let (app, user) = (app_id.clone(), user.clone());
                    view! {
                        <label>"Whisper or message "
                            <select data-testid="why-subject" on:change=move |ev| {
                                let v = event_target_value(&ev);
                                if let Some((kind, id)) = v.split_once(':') {
                                    explain.dispatch(WhyExplain { input: WhyQuery { app_id: app.clone(), user: user.clone(), kind: kind.into(), id: id.into() } });
                                }
                            }>
                                <option value="">"Choose…"</option>
                                {list.into_iter().map(|c| view! { <option value=format!("{}:{}", c.kind, c.id)>{c.label}</option> }).collect_view()}
                            </select>
                        </label>
                    }.into_any()
                }
            }}
            {move || answer_or_error(explain.value().get())}
        </section>
    }
}

/// On a whisper's or a message's page: enter a user, read why.
#[component]
pub fn WhyForSubject(app_id: String, kind: &'static str, id: String) -> impl IntoView {
    let explain = ServerAction::<WhyExplain>::new();
    let user = RwSignal::new(String::new());
    view! {
        <section class="panel" aria-labelledby="why-h">
            <h2 id="why-h">"Why did (or didn't) a user get it?"</h2>
            <form on:submit=move |ev| {
                ev.prevent_default();
                explain.dispatch(WhyExplain { input: WhyQuery { app_id: app_id.clone(), user: user.get_untracked(), kind: kind.into(), id: id.clone() } });
            }>
                <label>"User (userId) "
                    <input type="text" data-testid="why-user" prop:value=move || user.get() on:input=move |ev| user.set(event_target_value(&ev))/>
                </label>
                <button type="submit">"Explain"</button>
            </form>
            {move || answer_or_error(explain.value().get())}
        </section>
    }
}
