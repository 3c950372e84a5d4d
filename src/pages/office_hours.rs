//! Settings → Office hours: the app's time zone, weekly hours, and the
//! reply a user gets when writing outside them.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::widgets::{last_error, Form, FormError};
use crate::{
    domain::{
        office_hours::{format_day, DAYS},
        properties::format_iso8601,
    },
    error::AppError,
    models::OfficeHoursView,
};

/// The page loads office hours with the rest of the settings; this
/// endpoint serves them alone (scripts, tests).
#[cfg_attr(feature = "hydrate", allow(dead_code))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OfficeHoursRef {
    pub app_id: String,
}

#[server(prefix = "/api", endpoint = "apps/office-hours", output = crate::wire::Json)]
pub async fn load_office_hours(input: OfficeHoursRef) -> Result<OfficeHoursView, AppError> {
    use crate::server::{office, request};
    request::as_teammate(|state, me| async move { office::load(&state, &me, &input.app_id).await }).await
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OfficeHoursInput {
    pub app_id: String,
    /// A checkbox: present ("on") when checked.
    #[serde(default)]
    pub enabled: Option<String>,
    pub time_zone: String,
    pub monday: String,
    pub tuesday: String,
    pub wednesday: String,
    pub thursday: String,
    pub friday: String,
    pub saturday: String,
    pub sunday: String,
    pub reply: String,
}

#[server(prefix = "/api", endpoint = "apps/office-hours/save", output = crate::wire::Json)]
pub async fn save_office_hours(input: OfficeHoursInput) -> Result<(), AppError> {
    use crate::server::{office, request};
    request::as_teammate(|state, me| async move {
        let i = &input;
        let days =
            [&i.monday, &i.tuesday, &i.wednesday, &i.thursday, &i.friday, &i.saturday, &i.sunday].map(String::as_str);
        let hours = crate::domain::office_hours::OfficeHours::parse(i.enabled.is_some(), &i.time_zone, days, &i.reply)
            .map_err(AppError::from_invalid)?;
        office::save(&state, &me, &i.app_id, hours).await
    })
    .await
}

const FIELDS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

/// The panel; its data comes with the settings page's, which reloads
/// after a save.
#[component]
pub fn OfficeHoursPanel(app_id: String, v: OfficeHoursView, save: ServerAction<SaveOfficeHours>) -> impl IntoView {
    let error = last_error(save.value());
    let message = move |field: &'static str| move || error.get().and_then(|e| e.field_message(field));
    let h = v.hours.clone();
    let status = match (v.open_now, v.back_at) {
        (None, _) => "Office hours are off: the team is shown as available.".to_string(),
        (Some(true), _) => "Open now.".to_string(),
        (Some(false), Some(at)) => format!("Closed now; back at {} (UTC).", format_iso8601(at)),
        (Some(false), None) => "Closed now.".to_string(),
    };
    view! {
        <section class="panel" aria-labelledby="office-h">
            <h2 id="office-h">"Office hours"</h2>
            <p data-testid="office-status">{status}</p>
            <Form action=save>
                <input type="hidden" name="input[app_id]" value=app_id/>
                <div class="field">
                    <label><input type="checkbox" name="input[enabled]" checked=h.enabled/>" Use office hours"</label>
                </div>
                <div class="field">
                    <label for="office-tz">"Time zone"</label>
                    <input id="office-tz" name="input[time_zone]" list="office-tzs" value=h.time_zone.clone() autocomplete="off"
                        aria-describedby="office-tz-error"/>
                    <datalist id="office-tzs">{v.time_zones.iter().map(|z| view! { <option value=z.clone()/> }).collect_view()}</datalist>
                    <p class="field-error" id="office-tz-error" role="alert">{message("time_zone")}</p>
                </div>
                <p class="hint">"Hours per day, like 09:00-12:00, 13:00-17:30; leave a day empty when closed."</p>
                {DAYS.iter().zip(FIELDS).enumerate().map(|(i, (day, field))| {
                    let id = format!("office-{field}");
                    view! {
                        <div class="field">
                            <label for=id.clone()>{*day}</label>
                            <input id=id name=format!("input[{field}]") value=format_day(&h.days[i]) autocomplete="off"/>
                            <p class="field-error" role="alert">{message(field)}</p>
                        </div>
                    }
                }).collect_view()}
                <div class="field">
                    <label for="office-reply">"Reply outside office hours"</label>
                    <p class="hint">"Sent once while you are away, instead of the auto-response. {{ firstName || there }} works as in whispers."</p>
                    <textarea id="office-reply" name="input[reply]" rows="3">{h.reply.clone()}</textarea>
                    <p class="field-error" role="alert">{message("reply")}</p>
                </div>
                <FormError error/>
                <button type="submit">"Save office hours"</button>
            </Form>
        </section>
    }
}
