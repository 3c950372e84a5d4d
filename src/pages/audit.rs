//! The audit log (owner only): who did what to the app's secrets and
//! settings, to teammates and to their own sign-ins, newest first, 50 rows
//! a page by keyset cursor.

use leptos::prelude::*;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};

use super::{
    frame::use_app_id,
    widgets::{Loading, PageError},
};
use crate::{
    domain::{format_date, properties::format_iso8601},
    error::AppError,
    models::AuditPage,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    pub app_id: String,
    /// The previous page's cursor ("" for the newest page).
    #[serde(default)]
    pub after: String,
}

#[server(prefix = "/api", endpoint = "apps/audit-log", output = crate::wire::Json)]
pub async fn load_audit_log(input: AuditQuery) -> Result<AuditPage, AppError> {
    use crate::server::{auth, request};
    request::as_teammate(|state, me| async move { auth::audit_log(&state, &me, &input.app_id, &input.after).await })
        .await
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
fn when(ms: i64) -> String {
    let secs = ms.rem_euclid(86_400_000) / 1000;
    format!("{} {:02}:{:02}:{:02} UTC", format_date(ms), secs / 3600, secs / 60 % 60, secs % 60)
}

#[component]
pub fn AuditLogPage() -> impl IntoView {
    let app_id = use_app_id();
    // The page shown: the cursors of the pages before it (empty: the newest).
    let pages: RwSignal<Vec<String>> = RwSignal::new(vec![]);
    let data = Resource::new(
        move || AuditQuery { app_id: app_id.get(), after: pages.with(|p| p.last().cloned().unwrap_or_default()) },
        load_audit_log,
    );
    view! {
        <Title text="Audit log"/>
        <h1>"Audit log"</h1>
        <p class="hint">"Who changed this app's keys, secrets and settings, and its teammates; and, for the whole deployment, password changes and sign-outs everywhere. Newest first; times in UTC. Secrets are never recorded."</p>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(page) => view! { <AuditTable page pages/> }.into_any(),
                    Err(error) => view! { <PageError error/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn AuditTable(page: AuditPage, pages: RwSignal<Vec<String>>) -> impl IntoView {
    let deeper = pages.with_untracked(|p| !p.is_empty());
    let paging = (deeper || page.next.is_some()).then(|| {
        let next = page.next.clone();
        view! {
            <nav class="pager" aria-label="Pages">
                {deeper.then(|| view! {
                    <button type="button" on:click=move |_| pages.set(vec![])>"Newest"</button>
                    <button type="button" on:click=move |_| pages.update(|p| { p.pop(); })>"Newer"</button>
                })}
                {next.map(|cursor| view! {
                    <button type="button" data-testid="audit-older" on:click=move |_| pages.update(|p| p.push(cursor.clone()))>"Older"</button>
                })}
            </nav>
        }
    });
    if page.entries.is_empty() {
        return view! { <p class="muted" data-testid="audit-empty">"Nothing recorded yet."</p> {paging} }.into_any();
    }
    view! {
        <div class="table-wrap">
            <table class="audit" data-testid="audit-log">
                <thead>
                    <tr><th scope="col">"When"</th><th scope="col">"Who"</th><th scope="col">"What"</th><th scope="col">"Details"</th></tr>
                </thead>
                <tbody>
                    {page.entries.into_iter().map(|e| view! {
                        <tr data-action=e.action.clone()>
                            <td><time datetime=format_iso8601(e.at)>{when(e.at)}</time></td>
                            <td>{e.actor_name.clone()}</td>
                            <td>
                                {e.label.clone()}
                                {e.deployment_wide.then(|| view! { " " <span class="badge">"All apps"</span> })}
                            </td>
                            <td class="audit-detail">{e.detail.clone()}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
        {paging}
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_read_in_utc_to_the_second() {
        assert_eq!(super::when(1_795_000_000_000), "2026-11-18 11:06:40 UTC");
        assert_eq!(super::when(0), "1970-01-01 00:00:00 UTC");
    }
}
