//! How a whisper looks to an end user: the in-app notification card and the
//! message inside the messenger. The editor's live preview renders these,
//! and the widget will render the same components, so what a marketer sees
//! is what a user gets. The HTML comes from `domain::template::render_html`,
//! which escapes all text and emits only a few safe tags.

use leptos::prelude::*;

use crate::domain::whisper::{Button, ButtonAction};

fn button_views(buttons: Vec<Button>) -> impl IntoView {
    buttons
        .into_iter()
        .map(|b| match b.action {
            ButtonAction::Link(url) => view! {
                <a class="mm-button" href=url target="_blank" rel="noopener noreferrer nofollow">{b.label}</a>
            }
            .into_any(),
            ButtonAction::Reply(_) => view! { <button type="button" class="mm-button">{b.label}</button> }.into_any(),
        })
        .collect_view()
}

/// The card that pops up over the customer's page.
#[component]
pub fn NotificationCard(
    sender: Signal<(String, String)>,
    html: Signal<String>,
    buttons: Signal<Vec<Button>>,
) -> impl IntoView {
    view! {
        <div class="mm-card" role="group" aria-label="Notification preview">
            <div class="mm-card-head">
                <span class="avatar" aria-hidden="true">{move || sender.get().1}</span>
                <span class="mm-sender">{move || sender.get().0}</span>
            </div>
            <div class="mm-body" inner_html=move || html.get()></div>
            <div class="mm-buttons">{move || button_views(buttons.get())}</div>
        </div>
    }
}

/// The same message as it appears in the messenger's conversation.
#[component]
pub fn MessengerMessage(
    sender: Signal<(String, String)>,
    html: Signal<String>,
    buttons: Signal<Vec<Button>>,
) -> impl IntoView {
    view! {
        <div class="mm-messenger" role="group" aria-label="Messenger preview">
            <div class="mm-messenger-head">"Conversation"</div>
            <div class="mm-message">
                <span class="avatar" aria-hidden="true">{move || sender.get().1}</span>
                <div>
                    <div class="mm-sender">{move || sender.get().0}</div>
                    <div class="mm-bubble" inner_html=move || html.get()></div>
                    <div class="mm-buttons">{move || button_views(buttons.get())}</div>
                </div>
            </div>
        </div>
    }
}
