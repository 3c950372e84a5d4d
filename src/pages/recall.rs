//! Recall in the dashboard: one card (the timeline's "Recall"), a
//! whisper's unseen cards (on its page: the whisper is paused too), a
//! manual in-app message's unseen cards (on its page: the message is
//! stopped too). Cards a user has already seen stay.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecallInput {
    pub app_id: String,
    /// A card's id, a whisper's or a manual message's.
    pub id: String,
}

#[server(prefix = "/api", endpoint = "recall/card", output = crate::wire::Json)]
pub async fn recall_card(input: RecallInput) -> Result<(), AppError> {
    use crate::server::{recall, request};
    request::as_teammate(|state, me| async move { recall::card(&state, &me, &input.app_id, &input.id).await }).await
}

#[server(prefix = "/api", endpoint = "recall/whisper", output = crate::wire::Json)]
pub async fn recall_whisper(input: RecallInput) -> Result<u64, AppError> {
    use crate::server::{recall, request};
    request::as_teammate(
        |state, me| async move { Ok(recall::whisper(&state, &me, &input.app_id, &input.id).await? as u64) },
    )
    .await
}

#[server(prefix = "/api", endpoint = "recall/message", output = crate::wire::Json)]
pub async fn recall_message(input: RecallInput) -> Result<u64, AppError> {
    use crate::server::{recall, request};
    request::as_teammate(
        |state, me| async move { Ok(recall::message(&state, &me, &input.app_id, &input.id).await? as u64) },
    )
    .await
}

fn cards(n: u64) -> String {
    if n == 1 {
        "1 card".into()
    } else {
        format!("{n} cards")
    }
}

/// "Recall unseen cards" on a whisper's page. The whisper is paused first
/// (`status` becomes `paused`): a marketer recalling a whisper does not
/// want it to keep going out.
#[component]
pub fn RecallWhisper(whisper_id: String, status: RwSignal<String>) -> impl IntoView {
    let app_id = super::frame::use_app_id();
    let recall = ServerAction::<RecallWhisper>::new();
    let confirming = RwSignal::new(false);
    let id = StoredValue::new(whisper_id);
    Effect::new(move |_| {
        if let Some(Ok(_)) = recall.value().get() {
            status.set("paused".into());
        }
    });
    view! {
        <div class="recall">
            <Show when=move || confirming.get() fallback=move || view! {
                <button type="button" data-testid="recall-whisper" on:click=move |_| confirming.set(true)>"Recall unseen cards"</button>
            }>
                <div class="secret-once" role="alertdialog" aria-label="Recall this whisper's unseen cards">
                    <p>"Cards of this whisper that users have not seen yet are taken off their screens, and the whisper is paused so that no new card goes out until you resume it. Users who have seen it keep it. A user whose card is recalled does not get this whisper again, even after a resume."</p>
                    <button type="button" on:click=move |_| {
                        confirming.set(false);
                        recall.dispatch(RecallWhisper { input: RecallInput { app_id: app_id.get_untracked(), id: id.get_value() } });
                    }>"Recall and pause"</button>
                    <button type="button" class="link-button" on:click=move |_| confirming.set(false)>"Cancel"</button>
                </div>
            </Show>
            <p role="status" class="muted" data-testid="recall-result">{move || match recall.value().get() {
                Some(Ok(n)) => format!("{} recalled. The whisper is paused.", cards(n)),
                _ => String::new(),
            }}</p>
            {move || recall.value().get().and_then(|r| r.err()).map(|e| view! { <p class="form-error" role="alert">{e.to_string()}</p> })}
        </div>
    }
}

/// "Recall unseen cards" on a manual in-app message's page: the message is
/// stopped too (nobody else gets it).
#[component]
pub fn RecallMessage(message_id: String, kind: String) -> impl IntoView {
    let app_id = super::frame::use_app_id();
    let recall = ServerAction::<RecallMessage>::new();
    let confirming = RwSignal::new(false);
    let id = StoredValue::new(message_id);
    (kind != "email").then(|| view! {
        <div class="recall">
            <Show when=move || confirming.get() fallback=move || view! {
                <button type="button" data-testid="recall-message" on:click=move |_| confirming.set(true)>"Recall unseen cards"</button>
            }>
                <div class="secret-once" role="alertdialog" aria-label="Recall this message's unseen cards">
                    <p>"Recipients who have not seen this message yet will not see it: it is taken off their screens, and the message is stopped so that nobody else gets it. Those who have seen it keep it."</p>
                    <button type="button" on:click=move |_| {
                        confirming.set(false);
                        recall.dispatch(RecallMessage { input: RecallInput { app_id: app_id.get_untracked(), id: id.get_value() } });
                    }>"Recall and stop"</button>
                    <button type="button" class="link-button" on:click=move |_| confirming.set(false)>"Cancel"</button>
                </div>
            </Show>
            <p role="status" class="muted" data-testid="recall-result">{move || match recall.value().get() {
                Some(Ok(n)) => format!("{} recalled. The message is stopped.", cards(n)),
                _ => String::new(),
            }}</p>
            {move || recall.value().get().and_then(|r| r.err()).map(|e| view! { <p class="form-error" role="alert">{e.to_string()}</p> })}
        </div>
    })
}
