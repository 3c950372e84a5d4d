//! Settings of one app: install snippet, API keys, identity verification,
//! what the widget may set, whisper limit, office hours, email (SMTP),
//! teammates.

use leptos::prelude::*;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};

use super::{
    frame::{use_app_id, IdentityEnforced},
    widgets::{last_error, Field, Form, FormError, Loading, PageError},
};
use crate::{
    domain::{email::SmtpSecurity, format_date},
    error::AppError,
    models::{AppSettings, NewApiKey, SmtpView, TeammateView},
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppRef {
    pub app_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewKeyInput {
    pub app_id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRef {
    pub app_id: String,
    pub key_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewTeammateInput {
    pub app_id: String,
    pub name: String,
    pub email: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TeammateRef {
    pub app_id: String,
    pub teammate_id: String,
}

#[server(prefix = "/api", endpoint = "apps/settings", output = crate::wire::Json)]
pub async fn load_settings(input: AppRef) -> Result<AppSettings, AppError> {
    use crate::server::{apps, request};
    request::as_teammate(|state, me| async move { apps::settings(&state, &me, &input.app_id).await }).await
}

#[server(prefix = "/api", endpoint = "apps/keys/create", output = crate::wire::Json)]
pub async fn create_api_key(input: NewKeyInput) -> Result<NewApiKey, AppError> {
    use crate::server::{apps, request};
    request::as_teammate(|state, me| async move { apps::create_api_key(&state, &me, &input.app_id, &input.name).await })
        .await
}

#[server(prefix = "/api", endpoint = "apps/keys/revoke", output = crate::wire::Json)]
pub async fn revoke_api_key(input: KeyRef) -> Result<(), AppError> {
    use crate::server::{apps, request};
    request::as_teammate(
        |state, me| async move { apps::revoke_api_key(&state, &me, &input.app_id, &input.key_id).await },
    )
    .await
}

#[server(prefix = "/api", endpoint = "apps/identity-secret/roll", output = crate::wire::Json)]
pub async fn roll_identity_secret(input: AppRef) -> Result<String, AppError> {
    use crate::server::{apps, request};
    request::as_teammate(|state, me| async move { apps::roll_identity_secret(&state, &me, &input.app_id).await }).await
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnforceInput {
    pub app_id: String,
    /// "true" or "false".
    pub enforced: String,
}

#[server(prefix = "/api", endpoint = "apps/identity-enforced", output = crate::wire::Json)]
pub async fn set_identity_enforced(input: EnforceInput) -> Result<(), AppError> {
    use crate::server::{apps, request};
    request::as_teammate(|state, me| async move {
        let enforced = request::on_off(&input.enforced, "enforced")?;
        apps::set_identity_enforced(&state, &me, &input.app_id, enforced).await
    })
    .await
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerOnlyInput {
    pub app_id: String,
    /// Custom property names, one a line.
    #[serde(default)]
    pub properties: String,
    /// Event names, one a line.
    #[serde(default)]
    pub events: String,
}

/// Replaces the properties and events only the backend may set or track.
#[server(prefix = "/api", endpoint = "apps/server-only", output = crate::wire::Json)]
pub async fn set_server_only(input: ServerOnlyInput) -> Result<(), AppError> {
    use crate::server::{apps, request};
    request::as_teammate(|state, me| async move {
        apps::set_server_only(&state, &me, &input.app_id, &input.properties, &input.events).await
    })
    .await
}

#[server(prefix = "/api", endpoint = "teammates/add", output = crate::wire::Json)]
pub async fn add_teammate(input: NewTeammateInput) -> Result<TeammateView, AppError> {
    use crate::server::{auth, request};
    request::as_teammate(|state, me| async move {
        auth::add_teammate(&state, &me, &input.app_id, &input.name, &input.email, &input.password).await
    })
    .await
}

#[server(prefix = "/api", endpoint = "teammates/remove", output = crate::wire::Json)]
pub async fn remove_teammate(input: TeammateRef) -> Result<(), AppError> {
    use crate::server::{auth, request};
    request::as_teammate(|state, me| async move {
        auth::remove_teammate(&state, &me, &input.app_id, &input.teammate_id).await
    })
    .await
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LimitInput {
    pub app_id: String,
    /// Empty for unlimited.
    pub max_active: String,
}

#[server(prefix = "/api", endpoint = "apps/whisper-limit", output = crate::wire::Json)]
pub async fn set_whisper_limit(input: LimitInput) -> Result<(), AppError> {
    use crate::server::{request, whispers};
    request::as_teammate(|state, me| async move {
        let max = match input.max_active.trim() {
            "" => None,
            n => Some(n.parse::<i64>().map_err(|_| AppError::Field {
                field: "max_active".into(),
                message: "Enter a whole number, or leave empty for no limit.".into(),
            })?),
        };
        whispers::set_limit(&state, &me, &input.app_id, max).await
    })
    .await
}

/// The page loads the SMTP settings with the rest of the settings; this
/// endpoint serves them alone (scripts, tests).
#[server(prefix = "/api", endpoint = "apps/smtp", output = crate::wire::Json)]
pub async fn load_smtp(input: AppRef) -> Result<SmtpView, AppError> {
    use crate::server::{email, request};
    request::as_teammate(|state, me| async move { email::get_smtp(&state, &me, &input.app_id).await }).await
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SmtpInput {
    pub app_id: String,
    pub host: String,
    pub port: String,
    /// `none`, `start_tls` or `tls`.
    pub security: String,
    #[serde(default)]
    pub username: String,
    /// Empty: keep the stored password.
    #[serde(default)]
    pub password: String,
    pub from_address: String,
}

#[server(prefix = "/api", endpoint = "apps/smtp/save", output = crate::wire::Json)]
pub async fn save_smtp(input: SmtpInput) -> Result<(), AppError> {
    use crate::server::{email, request};
    request::as_teammate(|state, me| async move {
        let form = email::SmtpForm {
            host: input.host,
            port: input.port,
            security: input.security,
            username: input.username,
            password: input.password,
            from_address: input.from_address,
        };
        email::save_smtp(&state, &me, &input.app_id, form).await
    })
    .await
}

#[server(prefix = "/api", endpoint = "apps/smtp/clear", output = crate::wire::Json)]
pub async fn clear_smtp(input: AppRef) -> Result<(), AppError> {
    use crate::server::{email, request};
    request::as_teammate(|state, me| async move { email::clear_smtp(&state, &me, &input.app_id).await }).await
}

/// Email (SMTP): where an app's emails go out. Its data comes with the
/// settings page's, which reloads after a save.
#[component]
fn SmtpPanel(
    app_id: String,
    v: SmtpView,
    manage: bool,
    save: ServerAction<SaveSmtp>,
    clear: ServerAction<ClearSmtp>,
) -> impl IntoView {
    let error = last_error(save.value());
    let clear_error = last_error(clear.value());
    let message = move |field: &'static str| move || error.get().and_then(|e| e.field_message(field));
    let invalid = move |field: &'static str| move || if message(field)().is_some() { "true" } else { "false" };
    let s = v.settings.clone();
    let status = match &s {
        None => "Email is off for this app until you save these settings.".to_string(),
        Some(s) => format!("Email is on: sent through {}:{} from {}.", s.host, s.port, s.from_address),
    };
    let security = s.as_ref().map(|s| s.security).unwrap_or(SmtpSecurity::StartTls);
    let host = s.as_ref().map(|s| s.host.clone()).unwrap_or_default();
    let port = s.as_ref().map(|s| s.port.to_string()).unwrap_or_else(|| security.usual_port().to_string());
    let username = s.as_ref().and_then(|s| s.username.clone()).unwrap_or_default();
    let from_address = s.as_ref().map(|s| s.from_address.clone()).unwrap_or_default();
    let placeholder = if v.password_set { "unchanged" } else { "" };
    let clear_app_id = app_id.clone();
    view! {
        <section class="panel" aria-labelledby="smtp-h">
            <h2 id="smtp-h">"Email (SMTP)"</h2>
            <p data-testid="smtp-status">{status}</p>
            <p class="hint">"Manual messages of the email kind go out through your own SMTP server. Every email has an unsubscribe link; a user who follows it gets the property unsubscribedFromEmails = true."</p>
            {if manage {
                view! {
                    <Form action=save>
                        <input type="hidden" name="input[app_id]" value=app_id/>
                        <div class="field">
                            <label for="smtp-host">"Server host"</label>
                            <input id="smtp-host" name="input[host]" value=host autocomplete="off" placeholder="smtp.example.com"
                                aria-invalid=invalid("host") aria-describedby="smtp-host-error"/>
                            <p class="field-error" id="smtp-host-error" aria-live="polite">{message("host")}</p>
                        </div>
                        <div class="field">
                            <label for="smtp-port">"Port"</label>
                            <input id="smtp-port" name="input[port]" value=port inputmode="numeric" autocomplete="off"
                                aria-invalid=invalid("port") aria-describedby="smtp-port-hint smtp-port-error"/>
                            <p class="hint" id="smtp-port-hint">"Usually 587 with STARTTLS, 465 with TLS."</p>
                            <p class="field-error" id="smtp-port-error" aria-live="polite">{message("port")}</p>
                        </div>
                        <div class="field">
                            <label for="smtp-security">"Security"</label>
                            <select id="smtp-security" name="input[security]" aria-describedby="smtp-security-error">
                                {SmtpSecurity::ALL.into_iter().map(|o| view! {
                                    <option value=o.as_str() selected=o == security>{o.label()}</option>
                                }).collect_view()}
                            </select>
                            <p class="field-error" id="smtp-security-error" aria-live="polite">{message("security")}</p>
                        </div>
                        <div class="field">
                            <label for="smtp-username">"User name"</label>
                            <input id="smtp-username" name="input[username]" value=username autocomplete="off"
                                aria-invalid=invalid("username") aria-describedby="smtp-username-hint smtp-username-error"/>
                            <p class="hint" id="smtp-username-hint">"Leave empty if the server takes mail without signing in."</p>
                            <p class="field-error" id="smtp-username-error" aria-live="polite">{message("username")}</p>
                        </div>
                        <div class="field">
                            <label for="smtp-password">"Password"</label>
                            <input id="smtp-password" name="input[password]" type="password" autocomplete="new-password"
                                placeholder=placeholder aria-invalid=invalid("password")
                                aria-describedby="smtp-password-hint smtp-password-error"/>
                            <p class="hint" id="smtp-password-hint">
                                {if v.password_set { "Stored encrypted. Leave empty to keep it." } else { "Stored encrypted; never shown again." }}
                            </p>
                            <p class="field-error" id="smtp-password-error" aria-live="polite">{message("password")}</p>
                        </div>
                        <div class="field">
                            <label for="smtp-from">"From address"</label>
                            <input id="smtp-from" name="input[from_address]" value=from_address inputmode="email" autocomplete="off"
                                placeholder="hello@example.com" aria-invalid=invalid("from_address")
                                aria-describedby="smtp-from-hint smtp-from-error"/>
                            <p class="hint" id="smtp-from-hint">"Emails show the sending teammate's name with this address."</p>
                            <p class="field-error" id="smtp-from-error" aria-live="polite">{message("from_address")}</p>
                        </div>
                        <FormError error/>
                        <button type="submit">"Save email settings"</button>
                    </Form>
                    {v.settings.is_some().then(|| view! {
                        <Form action=clear>
                            <input type="hidden" name="input[app_id]" value=clear_app_id/>
                            <FormError error=clear_error/>
                            <button type="submit" class="danger">"Turn email off"</button>
                        </Form>
                    })}
                }.into_any()
            } else {
                view! { <p class="muted">"Only the owner can change the email settings."</p> }.into_any()
            }}
        </section>
    }
}

#[component]
fn WhisperLimit(app_id: String, current: Option<i64>, action: ServerAction<SetWhisperLimit>) -> impl IntoView {
    let error = last_error(action.value());
    view! {
        <section class="panel" aria-labelledby="limit-h">
            <h2 id="limit-h">"Whispers"</h2>
            <p>{match current { Some(n) => format!("This app may have at most {n} active whispers."), None => "This app may have any number of active whispers.".to_string() }}</p>
            <Form action>
                <input type="hidden" name="input[app_id]" value=app_id/>
                <Field id="max-active" label="Limit of active whispers" name="input[max_active]" field="max_active" error inputmode="numeric" hint="Leave empty for no limit."/>
                <FormError error/>
                <button type="submit">"Save limit"</button>
            </Form>
        </section>
    }
}

#[component]
pub fn SettingsPage() -> impl IntoView {
    let app_id = use_app_id();
    let create_key = ServerAction::<CreateApiKey>::new();
    let revoke_key = ServerAction::<RevokeApiKey>::new();
    let roll = ServerAction::<RollIdentitySecret>::new();
    let add = ServerAction::<AddTeammate>::new();
    let remove = ServerAction::<RemoveTeammate>::new();
    let limit = ServerAction::<SetWhisperLimit>::new();
    let enforce = ServerAction::<SetIdentityEnforced>::new();
    let server_only = ServerAction::<SetServerOnly>::new();
    let office = ServerAction::<super::office_hours::SaveOfficeHours>::new();
    let smtp_save = ServerAction::<SaveSmtp>::new();
    let smtp_clear = ServerAction::<ClearSmtp>::new();
    let push_keys = ServerAction::<super::push::GeneratePushKeys>::new();
    let push_switch = ServerAction::<super::push::SetPushEnabled>::new();
    let data = Resource::new(
        move || {
            (
                app_id.get(),
                create_key.version().get(),
                revoke_key.version().get(),
                add.version().get(),
                remove.version().get(),
                limit.version().get(),
                enforce.version().get(),
                server_only.version().get(),
                office.version().get(),
                smtp_save.version().get(),
                smtp_clear.version().get(),
                // (one number for both: a tuple compares up to 12 items)
                push_keys.version().get() + push_switch.version().get(),
            )
        },
        |(app_id, ..)| load_settings(AppRef { app_id }),
    );
    // The frame's warning follows a change made here without a reload.
    if let Some(IdentityEnforced(shown)) = use_context::<IdentityEnforced>() {
        Effect::new(move |_| {
            if let Some(Ok(s)) = data.get() {
                shown.set(s.identity_enforced);
            }
        });
    }
    view! {
        <Title text="Settings"/>
        <h1>"Settings"</h1>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(s) => view! {
                        <Install s=s.clone()/>
                        <ApiKeys s=s.clone() create_key revoke_key/>
                        <Identity app_id=s.app.id.clone() enforced=s.identity_enforced manage=s.can_manage_secrets roll enforce/>
                        <WidgetRules s=s.clone() action=server_only/>
                        <WhisperLimit app_id=s.app.id.clone() current=s.max_active_whispers action=limit/>
                        <super::office_hours::OfficeHoursPanel app_id=s.app.id.clone() v=s.office.clone() save=office/>
                        <SmtpPanel app_id=s.app.id.clone() v=s.smtp.clone() manage=s.can_manage_secrets save=smtp_save clear=smtp_clear/>
                        <super::push::PushPanel app_id=s.app.id.clone() v=s.push.clone() keys=push_keys switch=push_switch/>
                        <Teammates s add remove/>
                    }.into_any(),
                    Err(error) => view! { <PageError error/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn Install(s: AppSettings) -> impl IntoView {
    view! {
        <section class="panel" aria-labelledby="install-h">
            <h2 id="install-h">"Install"</h2>
            <p>"App ID: " <code data-testid="app-id">{s.app.id.clone()}</code></p>
            <p>"Paste this snippet before " <code>"</body>"</code> " on every page of your site:"</p>
            <pre class="snippet" aria-label="Install snippet"><code>{s.snippet}</code></pre>
            <p class="hint">"It adds the messenger to the page and defines " <code>"Murmur.init"</code> ", " <code>"login"</code> ", " <code>"logout"</code> ", " <code>"track"</code> ", " <code>"updateUser"</code> ", " <code>"open"</code> ", " <code>"close"</code> " and " <code>"on"</code> ". Calls made before it loads are kept."</p>
        </section>
    }
}

#[component]
fn ApiKeys(
    s: AppSettings,
    create_key: ServerAction<CreateApiKey>,
    revoke_key: ServerAction<RevokeApiKey>,
) -> impl IntoView {
    let error = last_error(create_key.value());
    let revoke_error = last_error(revoke_key.value());
    let created = move || create_key.value().get().and_then(|r| r.ok());
    let app_id = s.app.id.clone();
    let form_app_id = app_id.clone();
    let manage = s.can_manage_secrets;
    view! {
        <section class="panel" aria-labelledby="keys-h">
            <h2 id="keys-h">"API keys"</h2>
            <p>"Your backend calls murmur's REST API with a key id and its secret."</p>
            {move || created().map(|k| view! {
                <div class="secret-once" role="status">
                    <p><strong>{format!("Secret for key {}", k.id)}</strong>" — copy it now, it will not be shown again:"</p>
                    <code class="secret" data-testid="api-key-secret">{k.secret}</code>
                </div>
            })}
            {if manage {
                view! {
                    <Form action=create_key>
                        <input type="hidden" name="input[app_id]" value=form_app_id/>
                        <Field id="key-name" label="Key name" name="input[name]" field="name" error hint="For example: production backend."/>
                        <FormError error/>
                        <button type="submit">"Create key"</button>
                    </Form>
                }.into_any()
            } else {
                view! { <p class="muted">"Only the owner can create and revoke keys."</p> }.into_any()
            }}
            <FormError error=revoke_error/>
            {if s.keys.is_empty() {
                view! { <p class="muted">"No keys yet."</p> }.into_any()
            } else {
                view! {
                    <table>
                        <thead><tr><th scope="col">"Name"</th><th scope="col">"Key id"</th><th scope="col">"Created"</th><th scope="col">"Status"</th><th scope="col"><span class="visually-hidden">"Actions"</span></th></tr></thead>
                        <tbody>
                            {s.keys.into_iter().map(move |k| {
                                let app_id = app_id.clone();
                                view! {
                                    <tr>
                                        <td>{k.name.clone()}</td>
                                        <td><code>{k.id.clone()}</code></td>
                                        <td>{format_date(k.created_at)}</td>
                                        <td>{if k.revoked { "Revoked" } else { "Active" }}</td>
                                        <td>
                                            {(manage && !k.revoked).then(|| view! {
                                                <Form action=revoke_key>
                                                    <input type="hidden" name="input[app_id]" value=app_id.clone()/>
                                                    <input type="hidden" name="input[key_id]" value=k.id.clone()/>
                                                    <button type="submit" class="danger" aria-label=format!("Revoke key {}", k.name)>"Revoke"</button>
                                                </Form>
                                            })}
                                        </td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

#[component]
fn Identity(
    app_id: String,
    enforced: bool,
    manage: bool,
    roll: ServerAction<RollIdentitySecret>,
    enforce: ServerAction<SetIdentityEnforced>,
) -> impl IntoView {
    let error = last_error(roll.value());
    let enforce_error = last_error(enforce.value());
    let secret = move || roll.value().get().and_then(|r| r.ok());
    let form_app_id = app_id.clone();
    view! {
        <section class="panel" aria-labelledby="identity-h">
            <h2 id="identity-h">"Identity verification"</h2>
            <p>"Your server signs each user's JWT with this app's identity secret, so nobody can pose as another user in the widget. The secret is stored encrypted and is shown only when it is created."</p>
            <p>"Sign with HS256, claims " <code>"{\"scope\": \"appUser\", \"userId\": \"…\", \"exp\": …}"</code> ", and pass it as " <code>"Murmur.init({ appId, userId, jwt })"</code> " or " <code>"Murmur.login(userId, jwt)"</code> "."</p>
            <p data-testid="identity-status">
                {if enforced { "Required: the widget refuses a userId without a valid JWT." } else { "Not required: anyone can claim a userId in the widget." }}
            </p>
            {if manage {
                view! {
                    <Form action=enforce>
                        <input type="hidden" name="input[app_id]" value=form_app_id/>
                        <input type="hidden" name="input[enforced]" value=if enforced { "false" } else { "true" }/>
                        <FormError error=enforce_error/>
                        <button type="submit" class=if enforced { "danger" } else { "" }>
                            {if enforced { "Stop requiring verification" } else { "Require verification" }}
                        </button>
                    </Form>
                    {move || secret().map(|s| view! {
                        <div class="secret-once" role="status">
                            <p><strong>"New identity secret"</strong>" — copy it now, it will not be shown again:"</p>
                            <code class="secret" data-testid="identity-secret">{s}</code>
                        </div>
                    })}
                    <Form action=roll>
                        <input type="hidden" name="input[app_id]" value=app_id/>
                        <FormError error/>
                        <button type="submit">"Roll identity secret"</button>
                    </Form>
                }.into_any()
            } else {
                view! { <p class="muted">"Only the owner can change verification or roll the secret."</p> }.into_any()
            }}
        </section>
    }
}

/// What the widget may set: the custom properties and events only the
/// backend may set or track (owner only to change).
#[component]
fn WidgetRules(s: AppSettings, action: ServerAction<SetServerOnly>) -> impl IntoView {
    let error = last_error(action.value());
    let listed = |names: &[String]| if names.is_empty() { "none".to_string() } else { names.join(", ") };
    let status = format!(
        "Server-only properties: {}. Server-only events: {}.",
        listed(&s.server_only_properties),
        listed(&s.server_only_events)
    );
    view! {
        <section class="panel" aria-labelledby="widget-rules-h">
            <h2 id="widget-rules-h">"What the widget may set"</h2>
            <p>"Anything the widget sends comes from the visitor's browser, so anyone can send it. List here the custom properties and events that only your backend may set or track (through the REST API); the widget is refused them with an error, and nothing is written."</p>
            <p class="hint">"A new custom property's type is fixed by your backend, or by a widget whose user is verified with a JWT. A widget without a verified user can store values, but cannot fix a property's type."</p>
            <p data-testid="server-only-status">{status}</p>
            {if s.can_manage_secrets {
                view! {
                    <Form action>
                        <input type="hidden" name="input[app_id]" value=s.app.id.clone()/>
                        <NamesField field="properties" label="Server-only properties" example="plan"
                            names=s.server_only_properties.clone() error/>
                        <NamesField field="events" label="Server-only events" example="subscription-cancelled"
                            names=s.server_only_events.clone() error/>
                        <FormError error/>
                        <button type="submit">"Save what the widget may set"</button>
                    </Form>
                }.into_any()
            } else {
                view! { <p class="muted">"Only the owner can change what the widget may set."</p> }.into_any()
            }}
        </section>
    }
}

/// A list of names, one a line, posted as `input[{field}]`, with its hint
/// and the server's message for `field` beside it.
#[component]
fn NamesField(
    field: &'static str,
    label: &'static str,
    example: &'static str,
    names: Vec<String>,
    error: Signal<Option<AppError>>,
) -> impl IntoView {
    let message = move || error.get().and_then(|e| e.field_message(field));
    let invalid = move || if message().is_some() { "true" } else { "false" };
    let id = format!("server-only-{field}");
    let text = names.join("\n");
    view! {
        <div class="field">
            <label for=id.clone()>{label}</label>
            <textarea id=id.clone() name=format!("input[{field}]") rows="4" autocomplete="off"
                aria-invalid=invalid aria-describedby=format!("{id}-hint {id}-error")
                prop:value=text.clone()>{text.clone()}</textarea>
            <p class="hint" id=format!("{id}-hint")>{format!("One name a line, for example {example}.")}</p>
            <p class="field-error" id=format!("{id}-error") aria-live="polite">{message}</p>
        </div>
    }
}

#[component]
fn Teammates(s: AppSettings, add: ServerAction<AddTeammate>, remove: ServerAction<RemoveTeammate>) -> impl IntoView {
    let error = last_error(add.value());
    let remove_error = last_error(remove.value());
    let app_id = s.app.id.clone();
    let form_app_id = app_id.clone();
    let manage = s.can_manage_teammates;
    view! {
        <section class="panel" aria-labelledby="team-h">
            <h2 id="team-h">"Teammates"</h2>
            <ul class="teammates">
                {s.teammates.into_iter().map(move |t| {
                    let app_id = app_id.clone();
                    view! {
                        <li>
                            <span class="avatar" aria-hidden="true">{t.initials.clone()}</span>
                            <span>{t.name.clone()}</span>
                            <span class="muted">{t.email.clone()}</span>
                            {t.is_owner.then(|| view! { <span class="badge">"Owner"</span> })}
                            {(manage && !t.is_owner).then(|| view! {
                                <Form action=remove>
                                    <input type="hidden" name="input[app_id]" value=app_id.clone()/>
                                    <input type="hidden" name="input[teammate_id]" value=t.id.clone()/>
                                    <button type="submit" class="danger" aria-label=format!("Remove {}", t.name)>"Remove"</button>
                                </Form>
                            })}
                        </li>
                    }
                }).collect_view()}
            </ul>
            <FormError error=remove_error/>
            {manage.then(|| view! {
                <h3>"Add a teammate"</h3>
                <Form action=add>
                    <input type="hidden" name="input[app_id]" value=form_app_id.clone()/>
                    <Field id="tm-name" label="Name" name="input[name]" field="name" error/>
                    <Field id="tm-email" label="Email" name="input[email]" field="email" error inputmode="email"/>
                    <Field id="tm-password" label="Password" name="input[password]" field="password" error kind="password" autocomplete="new-password" hint="At least 10 characters. Share it with them privately."/>
                    <FormError error/>
                    <button type="submit">"Add teammate"</button>
                </Form>
            })}
        </section>
    }
}
